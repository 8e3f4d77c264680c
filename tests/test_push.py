"""``fieldtune push``: the card published is the build's card, and without a token or a network it stops at once.

The upload itself needs the Hub, which tests cannot reach; everything before it
(directory, repository id, token, reachability) runs for real here.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fieldtune.card import write_card
from fieldtune.hub import hub_card, upload_operations
from fieldtune.hub_metadata import read_model_index
from fieldtune.models import REGISTRY

from .conftest import run_cli
from .test_card import card_config, write_build
from .test_records import training_record

#: an unreachable endpoint must fail well within this (libraries' own DNS retries take over a minute)
FAIL_FAST_SECONDS = 10


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build directory whose model/ is the real bundled model with a card written from a build's records."""
    root = tmp_path_factory.mktemp("build")
    shutil.copytree(REGISTRY["minilm"].locate(), root / "model")
    write_build(root, training_record(), None)
    write_card(root, corpus="corpus.jsonl", config=card_config())
    return root


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def _push(args: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    """Run ``fieldtune push`` as a user would, in a fresh process with exactly ``env``; (exit code, stderr, seconds)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "fieldtune", "push", *args], env=env, capture_output=True,
                          text=True, timeout=120)
    return done.returncode, done.stderr, time.monotonic() - started


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The current environment without any Hugging Face token or offline switch; HF_HOME empty (no stored login)."""
    env = {k: v for k, v in os.environ.items() if k not in {"HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT"}}
    return {**env, "HF_HOME": str(tmp_path / "hf-home"), **extra}


def test_push_without_a_token_says_how_to_get_one(build_dir: Path, tmp_path: Path) -> None:
    code, err, _ = _push([str(build_dir), "--repo-id", "someone/tuned"], _env(tmp_path))
    assert code == 2
    assert "no Hugging Face token: set HF_TOKEN" in err and "Traceback" not in err


def test_push_offline_fails_within_seconds(build_dir: Path, tmp_path: Path) -> None:
    """Nothing answers at the endpoint: exit 2 at once with a clear message, not a minute of retries."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    code, err, seconds = _push([str(build_dir), "--repo-id", "someone/tuned"],
                               _env(tmp_path, HF_TOKEN="hf_not_a_real_token", HF_ENDPOINT=endpoint))
    assert code == 2 and "Traceback" not in err
    assert f"cannot reach {endpoint}" in err and "offline" in err
    assert seconds < FAIL_FAST_SECONDS


def test_push_to_a_host_that_does_not_resolve_fails_within_seconds(build_dir: Path, tmp_path: Path) -> None:
    """The case of a machine without DNS: name resolution has no timeout of its own, the probe bounds it."""
    code, err, seconds = _push([str(build_dir), "--repo-id", "someone/tuned"],
                               _env(tmp_path, HF_TOKEN="hf_not_a_real_token", HF_ENDPOINT="https://hub.invalid"))
    assert code == 2 and "cannot reach https://hub.invalid" in err
    assert seconds < FAIL_FAST_SECONDS


def test_push_refuses_offline_mode_and_bad_input_with_exit_2(
    build_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_cli(["push", str(build_dir), "--repo-id", "someone/tuned"], capsys, monkeypatch)
    assert code == 2 and "HF_HUB_OFFLINE is set" in err
    code, _, err = run_cli(["push", str(build_dir), "--repo-id", "not a/valid//id"], capsys, monkeypatch)
    assert code == 2 and "is not a Hub repository id" in err
    code, _, err = run_cli(["push", str(tmp_path), "--repo-id", "someone/tuned"], capsys, monkeypatch)
    assert code == 2 and f"{tmp_path}: is neither a build directory" in err
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "modules.json").write_text("[]", encoding="utf-8")
    code, _, err = run_cli(["push", str(tmp_path), "--repo-id", "someone/tuned"], capsys, monkeypatch)
    assert code == 2 and "has no model card (README.md)" in err


def test_the_pushed_card_loads_the_repository_and_keeps_every_number(build_dir: Path) -> None:
    from huggingface_hub import ModelCard

    local = (build_dir / "model" / "README.md").read_text(encoding="utf-8")
    published = hub_card(local, "someone/tuned")
    assert f'SentenceTransformer("{build_dir / "model"}")' in local
    assert 'SentenceTransformer("someone/tuned")' in published and str(build_dir) not in published
    before, after = ModelCard(local).data, ModelCard(published).data
    assert after.model_name == "someone/tuned" and before.model_name == build_dir.name
    assert read_model_index(after) == read_model_index(before) != []
    # Only the usage line changed in the text: the sections are the build's own.
    assert ModelCard(published).text.replace('"someone/tuned"', f'"{build_dir / "model"}"') == ModelCard(local).text


def test_the_commit_carries_every_model_file_and_the_published_card(build_dir: Path) -> None:
    model_dir = build_dir / "model"
    (model_dir / ".cache").mkdir()
    (model_dir / ".cache" / "lock").write_text("", encoding="utf-8")
    operations = {op.path_in_repo: op for op in upload_operations(model_dir, "someone/tuned")}
    on_disk = {p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()}
    assert set(operations) == on_disk - {".cache/lock", ".gitattributes"}  # the Hub repository makes its own
    assert {"model.safetensors", "modules.json", "1_Pooling/config.json", "fieldtune.json"} <= set(operations)
    card = operations["README.md"].path_or_fileobj
    assert isinstance(card, bytes) and b'SentenceTransformer("someone/tuned")' in card


class _NotAHub(http.server.BaseHTTPRequestHandler):
    """A real HTTP server that answers every request 404, as a wrong HF_ENDPOINT would."""

    def _refuse(self) -> None:
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "not a Hub"}')

    do_GET = do_POST = do_PUT = do_HEAD = _refuse

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass


def test_an_endpoint_that_answers_but_is_not_a_hub_is_a_clear_error(build_dir: Path, tmp_path: Path) -> None:
    """Past the reachability check, the Hub's own refusals are errors with exit 2 too, not tracebacks."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotAHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        code, err, seconds = _push([str(build_dir), "--repo-id", "someone/tuned"],
                                   _env(tmp_path, HF_TOKEN="hf_not_a_real_token", HF_ENDPOINT=endpoint))
    finally:
        server.shutdown()
        server.server_close()
    assert code == 2, err
    assert "the Hub refused the push to someone/tuned" in err and "Traceback" not in err
    assert seconds < FAIL_FAST_SECONDS
