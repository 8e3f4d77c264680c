"""``fieldtune export`` never deletes a file it did not write (issue 13, items 2 and 9).

On commit 59c04d1, ``export --out E --onnx; echo n > E/NOTES.md; export --out E --onnx --int8``
deleted NOTES.md (the earlier export was removed whole), and ``--out`` naming a file ended in a
traceback. The exports here are of a one-layer, 32-dimension model (seconds, not minutes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from fieldtune.encoding import Encoder  # noqa: E402
from fieldtune.models import resolve_model  # noqa: E402
from fieldtune.onnx_layout import ONNX_FILE, ONNX_RECORD, is_onnx_export  # noqa: E402

from .conftest import run_cli  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random one-layer BERT with the bundled model's tokenizer, mean pooling and Normalize."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    root = tmp_path_factory.mktemp("tiny")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm").location)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64)
    BertModel(config).save_pretrained(str(root / "bert"))
    tokenizer.save_pretrained(str(root / "bert"))
    transformer = models.Transformer(str(root / "bert"))
    model = SentenceTransformer(modules=[transformer, models.Pooling(32, "mean"), models.Normalize()], device="cpu")
    path = root / "model"
    model.save(str(path))
    return path


def _export(model: Path, out: Path, capsys, monkeypatch, *extra: str) -> tuple[int, str, str]:
    return run_cli(["export", "--model", str(model), "--out", str(out), "--onnx", *extra], capsys, monkeypatch)


def _record(out: Path) -> dict:
    return json.loads((out / ONNX_RECORD).read_text())


def test_reexport_keeps_the_users_files(tiny_model: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "E"
    assert _export(tiny_model, out, capsys, monkeypatch)[0] == 0
    assert set(_record(out)["files"]) == {entry.name for entry in out.iterdir()}
    (out / "NOTES.md").write_text("n")
    (out / "mine").mkdir()
    (out / "mine" / "log.txt").write_text("kept")
    code, _, err = _export(tiny_model, out, capsys, monkeypatch, "--int8")
    assert code == 0, err
    assert (out / "NOTES.md").read_text() == "n" and (out / "mine" / "log.txt").read_text() == "kept"
    record = _record(out)
    assert record["int8"] is True and "NOTES.md" not in record["files"] and "mine" not in record["files"]
    assert is_onnx_export(out)
    assert Encoder(str(out), use_cache=False, show_progress=False).encode(["a test"], kind="query").shape == (1, 32)
    assert not list(tmp_path.glob(".export-*"))  # no staging directory left behind


def test_reexport_removes_only_the_earlier_exports_files(tiny_model: Path, tmp_path: Path, capsys,
                                                         monkeypatch) -> None:
    """A file the earlier export listed and the new one does not write goes; the user's stay."""
    out = tmp_path / "E"
    assert _export(tiny_model, out, capsys, monkeypatch)[0] == 0
    record = _record(out)
    record["files"].append("old-export-file.txt")
    (out / ONNX_RECORD).write_text(json.dumps(record))
    (out / "old-export-file.txt").write_text("written by an earlier export")
    (out / "NOTES.md").write_text("n")
    assert _export(tiny_model, out, capsys, monkeypatch)[0] == 0
    assert not (out / "old-export-file.txt").exists() and (out / "NOTES.md").read_text() == "n"


def test_an_export_from_before_the_file_list_keeps_notes(tiny_model: Path, tmp_path: Path, capsys,
                                                         monkeypatch) -> None:
    out = tmp_path / "E"
    assert _export(tiny_model, out, capsys, monkeypatch)[0] == 0
    record = _record(out)
    del record["files"]
    (out / ONNX_RECORD).write_text(json.dumps(record))
    (out / "NOTES.md").write_text("n")
    assert _export(tiny_model, out, capsys, monkeypatch, "--int8")[0] == 0
    assert (out / "NOTES.md").read_text() == "n" and _record(out)["int8"] is True


def test_a_user_file_the_new_export_would_overwrite_is_refused(tiny_model: Path, tmp_path: Path, capsys,
                                                               monkeypatch) -> None:
    out = tmp_path / "E"
    assert _export(tiny_model, out, capsys, monkeypatch)[0] == 0
    record = _record(out)
    record["files"].remove("tokenizer_config.json")  # as if the user had put it there
    (out / ONNX_RECORD).write_text(json.dumps(record))
    (out / "tokenizer_config.json").write_text("the user's")
    before = (out / ONNX_FILE).read_bytes()
    code, _, err = _export(tiny_model, out, capsys, monkeypatch, "--int8")
    assert code == 2 and "would overwrite tokenizer_config.json" in err and "Traceback" not in err
    assert (out / "tokenizer_config.json").read_text() == "the user's" and (out / ONNX_FILE).read_bytes() == before
    assert not list(tmp_path.glob(".export-*"))


def test_a_folder_that_is_not_an_export_is_refused_naming_its_files(tiny_model: Path, tmp_path: Path, capsys,
                                                                    monkeypatch) -> None:
    out = tmp_path / "E"
    out.mkdir()
    (out / "NOTES.md").write_text("n")
    code, _, err = _export(tiny_model, out, capsys, monkeypatch)
    assert code == 2 and "NOTES.md" in err and "not an earlier fieldtune ONNX export" in err
    assert "Traceback" not in err and [p.name for p in out.iterdir()] == ["NOTES.md"]


def test_out_that_is_a_file_is_refused(tiny_model: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "E"
    out.write_text("a file")
    code, _, err = _export(tiny_model, out, capsys, monkeypatch)
    assert code == 2 and f"{out}: is a file" in err and "Traceback" not in err
    assert out.read_text() == "a file"
    code, _, err = _export(tiny_model, out / "inside", capsys, monkeypatch)
    assert code == 2 and str(out) in err and "Traceback" not in err
    assert out.read_text() == "a file"
