"""Bad input to build/ingest loses no file and answers with exit 2 and a message (issue: hostile test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .build_fixture import write_corpus
from .conftest import run_cli


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _corpus(path: Path, n: int) -> Path:
    return write_corpus(path, n_docs=n)


def test_build_refuses_a_folder_with_user_files_and_deletes_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    work = tmp_path / "W"
    (work / "model").mkdir(parents=True)
    (work / "training").mkdir()
    (work / "model" / "keep.txt").write_text("x")
    (work / "training" / "mylog.txt").write_text("y")
    before = _tree(work)
    code, _, err = run_cli(["build", str(_corpus(tmp_path / "c.jsonl", 30)), "--out", str(work)], capsys, monkeypatch)
    assert code == 2 and "holds no fieldtune manifest" in err and "Traceback" not in err
    assert _tree(work) == before


@pytest.mark.parametrize("content", ['{"app": "notes", "files": 3}', "[1, 2]"])
def test_build_leaves_another_applications_manifest_alone(tmp_path: Path, content: str, capsys, monkeypatch) -> None:
    work = tmp_path / "W"
    work.mkdir()
    (work / "manifest.json").write_text(content)
    code, _, err = run_cli(["build", str(_corpus(tmp_path / "c.jsonl", 30)), "--out", str(work)], capsys, monkeypatch)
    assert code == 2 and "not a fieldtune work-directory manifest" in err and "Traceback" not in err
    assert (work / "manifest.json").read_text() == content and _tree(work) == {"manifest.json": content.encode()}


def test_a_failed_build_changes_nothing_in_a_finished_work_directory(tmp_path: Path, capsys, monkeypatch) -> None:
    work = tmp_path / "W"
    code, _, _ = run_cli(["ingest", str(_corpus(tmp_path / "big.jsonl", 25)), "--out", str(work)], capsys, monkeypatch)
    assert code == 0
    before = _tree(work)
    code, _, err = run_cli(["build", str(_corpus(tmp_path / "tiny.jsonl", 3)), "--out", str(work)], capsys, monkeypatch)
    assert code == 2 and "3 documents" in err and "at least 20" in err
    assert _tree(work) == before


@pytest.mark.parametrize("options, message", [
    (["--max-tokens", "0"], "max_tokens must be at least 8"),
    (["--max-tokens", "16", "--overlap", "16"], "overlap must be between 0 and half"),
])
def test_bad_chunk_options_fail_before_any_work(tmp_path: Path, options, message, capsys, monkeypatch) -> None:
    corpus = _corpus(tmp_path / "c.jsonl", 25)
    for command in ("ingest", "build"):
        code, _, err = run_cli([command, str(corpus), "--out", str(tmp_path / command), *options], capsys, monkeypatch)
        assert code == 2 and message in err and "Traceback" not in err, (command, err)
        assert not (tmp_path / command).exists()


def test_out_that_is_a_file(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "f").write_text("mine")
    code, _, err = run_cli(
        ["ingest", str(_corpus(tmp_path / "c.jsonl", 25)), "--out", str(tmp_path / "f")], capsys, monkeypatch
    )
    assert code == 2 and "is a file" in err
    assert (tmp_path / "f").read_text() == "mine"


def test_a_failed_command_leaves_no_empty_out_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    code, _, err = run_cli(
        ["ingest", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "new")], capsys, monkeypatch
    )
    assert code == 2 and "does not exist" in err
    assert not (tmp_path / "new").exists()


def test_empty_records_are_skipped_and_counted_title_only_records_kept(tmp_path: Path, capsys, monkeypatch) -> None:
    corpus = _corpus(tmp_path / "c.jsonl", 25)
    with corpus.open("a") as handle:
        handle.write(json.dumps({"_id": "empty", "title": "", "text": ""}) + "\n")
        handle.write(json.dumps({"_id": "blank", "text": "   "}) + "\n")
        handle.write(json.dumps({"_id": "titled", "title": "Kostka polynomials of rank two", "text": ""}) + "\n")
    code, out, _ = run_cli(["ingest", str(corpus), "--out", str(tmp_path / "w")], capsys, monkeypatch)
    assert code == 0 and "skipped 2 empty records" in out
    chunks = [json.loads(line) for line in (tmp_path / "w" / "chunks.jsonl").read_text().splitlines()]
    assert not {"empty", "blank"} & {c["doc_id"] for c in chunks}
    titled = [c for c in chunks if c["doc_id"] == "titled"]
    assert titled and all(c["n_tokens"] > 0 and c["text"] for c in titled)


def test_build_takes_on_error_skip(tmp_path: Path, capsys, monkeypatch) -> None:
    corpus = _corpus(tmp_path / "c.jsonl", 25)
    with corpus.open("a") as handle:
        handle.write("{not json\n")
    code, _, err = run_cli(["concepts", str(corpus), "--out", str(tmp_path / "a")], capsys, monkeypatch)
    assert code == 2 and "malformed JSON" in err and "--on-error skip" in err
    code, out, err = run_cli(
        ["concepts", str(corpus), "--out", str(tmp_path / "b"), "--on-error", "skip"], capsys, monkeypatch
    )
    assert code == 0, err
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["stages"]["ingest"]["stats"]["documents"] == 25


def test_ctrl_c_says_what_was_kept_and_exits_130(tmp_path: Path, capsys, monkeypatch) -> None:
    import fieldtune.build

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fieldtune.build, "run_build", interrupted)
    code, _, err = run_cli(
        ["build", str(_corpus(tmp_path / "c.jsonl", 25)), "--out", str(tmp_path / "w")], capsys, monkeypatch
    )
    assert code == 130 and "finished stages are kept" in err


def test_a_damaged_tokenizer_is_named(tmp_path: Path, capsys, monkeypatch) -> None:
    import shutil

    from fieldtune.models import resolve_model

    model = tmp_path / "model"
    shutil.copytree(resolve_model("minilm").location, model)
    tokenizer = model / "tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes()[:1000])
    corpus = _corpus(tmp_path / "c.jsonl", 25)
    code, _, err = run_cli(
        ["ingest", str(corpus), "--out", str(tmp_path / "w"), "--model", str(model)], capsys, monkeypatch
    )
    assert code == 2 and "tokenizer.json" in err and "Traceback" not in err


def test_malformed_json_message_reads_once(tmp_path: Path) -> None:
    from fieldtune.errors import InputError
    from fieldtune.ingest import read_corpus

    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "1", "text": "tab\tinside"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="Invalid control character at column") as caught:
        read_corpus(path)
    assert "at at" not in str(caught.value)
