"""Kill a real build (SIGKILL) just after each stage boundary: nothing is half-published, a rerun finishes.

After every kill the manifest must be valid JSON and every artifact it lists must
still have its recorded hash; the build is then resumed, killed again after the
next stage, and so on. The final model must equal that of an uninterrupted build
with the same seed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fieldtune.config import BuildConfig
from fieldtune.hashing import file_sha256, path_sha256
from fieldtune.stages.registry import STAGES

from .build_fixture import write_corpus

pytestmark = pytest.mark.slow

BUILD = """
import sys
from fieldtune.build import run_build
from fieldtune.config import BuildConfig
run_build(sys.argv[1], sys.argv[2], BuildConfig(budget_minutes=10, seed=3,
          train_overrides={"max_seq_length": 48, "batch_size": 8, "max_steps": 4, "eval_every_steps": 2}))
"""
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _start(corpus: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", BUILD, str(corpus), str(out)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finished_stages(out: Path) -> list[str]:
    try:
        stages = json.loads((out / "manifest.json").read_text())["stages"]
        return [name for name, record in stages.items() if record.get("key")]
    except (OSError, ValueError, KeyError):
        return []


def _check_manifest(out: Path) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())  # valid JSON, whole
    card = [o for s in STAGES.values() for o in s.outputs if s.name == "card"]
    for name, record in manifest["stages"].items():
        for rel, digest in record["outputs"].items():
            exclude = [out / c for c in card if name != "card" and c.startswith(rel + "/")]
            assert path_sha256(out / rel, exclude) == digest, f"{rel} of stage {name} changed after the kill"
    return manifest


def test_killed_at_every_stage_boundary_then_resumed_gives_the_same_model(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    reference = tmp_path / "reference"
    done = subprocess.run([sys.executable, "-c", BUILD, str(corpus), str(reference)], env=ENV, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]

    out = tmp_path / "killed"
    config = BuildConfig(budget_minutes=10, seed=3)  # the stages BUILD runs (full-model training, no queries)
    names = [name for name, stage in STAGES.items() if stage.enabled(config)]
    for stage in names[:-1]:
        process = _start(corpus, out)
        deadline = time.time() + 600
        while stage not in _finished_stages(out) and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        manifest = _check_manifest(out)
        failure = process.stderr.read().decode()[-2000:]
        assert manifest["stages"].get(stage, {}).get("key"), f"stage {stage} never finished: {failure}"
    final = subprocess.run([sys.executable, "-c", BUILD, str(corpus), str(out)], env=ENV, capture_output=True)
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    _check_manifest(out)
    assert _finished_stages(out) == names
    weights = sorted(p.relative_to(out / "model") for p in (out / "model").rglob("*.safetensors"))
    assert weights and weights == sorted(
        p.relative_to(reference / "model") for p in (reference / "model").rglob("*.safetensors")
    )
    for rel in weights:
        assert file_sha256(out / "model" / rel) == file_sha256(reference / "model" / rel), rel
    for name in ("gate.json",):
        assert json.loads((out / "model" / name).read_text())["chosen"] == \
            json.loads((reference / "model" / name).read_text())["chosen"]
