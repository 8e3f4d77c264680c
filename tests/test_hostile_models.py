"""A damaged model directory (issue 13, item 9): every command that loads it names the file and the fix.

On commit 59c04d1 a truncated ``model.safetensors`` ended ``build``, ``eval``,
``index`` and ``export`` with safetensors' "incomplete metadata, file not
fully covered" and a Python traceback (exit 1). Now each exits 2 naming the
file and saying "re-export or re-download the model".
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fieldtune.models import DamagedModelError, check_model_files, load_model, resolve_model

from .build_fixture import write_corpus
from .conftest import run_cli


def _copy_of_minilm(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(resolve_model("minilm").location, target)
    return target


@pytest.fixture
def truncated(tmp_path: Path) -> Path:
    """A copy of the bundled model whose ``model.safetensors`` was cut to half its size."""
    model = _copy_of_minilm(tmp_path)
    weights = model / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    return model


def _assert_names_the_weights(code: int, out: str, err: str, model: Path) -> None:
    assert code == 2, (out, err)
    assert str(model / "model.safetensors") in err and "re-export or re-download the model" in err
    assert "Traceback" not in err


def test_eval_names_the_truncated_weights(truncated: Path, tiny_beir: Path, capsys, monkeypatch) -> None:
    code, out, err = run_cli(["eval", "--model", str(truncated), "--data", str(tiny_beir)], capsys, monkeypatch)
    _assert_names_the_weights(code, out, err, truncated)


def test_index_names_the_truncated_weights(truncated: Path, tiny_beir: Path, tmp_path: Path, capsys,
                                           monkeypatch) -> None:
    out_dir = tmp_path / "index"
    args = ["index", "--corpus", str(tiny_beir / "corpus.jsonl"), "--model", str(truncated), "--out", str(out_dir)]
    code, out, err = run_cli(args, capsys, monkeypatch)
    _assert_names_the_weights(code, out, err, truncated)
    assert not out_dir.exists()


def test_export_names_the_truncated_weights(truncated: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    pytest.importorskip("onnx")
    out_dir = tmp_path / "export"
    code, out, err = run_cli(["export", "--model", str(truncated), "--out", str(out_dir), "--onnx"], capsys,
                             monkeypatch)
    _assert_names_the_weights(code, out, err, truncated)
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_build_names_the_truncated_base_model(truncated: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", n_docs=25)
    args = ["build", str(corpus), "--base", str(truncated), "--out", str(tmp_path / "W"), "--budget-minutes", "1"]
    code, out, err = run_cli(args, capsys, monkeypatch)
    _assert_names_the_weights(code, out, err, truncated)


@pytest.mark.parametrize("cut", [5, 100])
def test_a_header_cut_short_is_named_too(tmp_path: Path, cut: int) -> None:
    model = _copy_of_minilm(tmp_path)
    os.truncate(model / "model.safetensors", cut)
    with pytest.raises(DamagedModelError, match="model.safetensors: damaged weights"):
        load_model(str(model), device="cpu")


def test_a_truncated_config_is_named(tmp_path: Path) -> None:
    model = _copy_of_minilm(tmp_path)
    config = model / "config.json"
    config.write_text(config.read_text()[:40])
    with pytest.raises(DamagedModelError, match=r"config\.json: damaged model file .*re-export or re-download"):
        check_model_files(model)


def test_missing_weights_name_the_directory(tmp_path: Path) -> None:
    model = _copy_of_minilm(tmp_path)
    (model / "model.safetensors").unlink()
    with pytest.raises(DamagedModelError, match=f"{model}: the model could not be loaded"):
        load_model(str(model), device="cpu")


def test_a_whole_model_passes_the_check() -> None:
    check_model_files(Path(resolve_model("minilm").location))


def test_a_damaged_onnx_export_is_named(tmp_path: Path, tiny_beir: Path, capsys, monkeypatch) -> None:
    """An export whose graph was cut short: eval names model.onnx (onnxruntime's own error names no fix)."""
    pytest.importorskip("onnxruntime")
    from fieldtune.onnx_layout import ONNX_FILE, ONNX_RECORD

    export = tmp_path / "export"
    export.mkdir()
    (export / ONNX_RECORD).write_text('{"max_seq_length": 128, "dimension": 384, "prompts": {}}')
    (export / ONNX_FILE).write_bytes(b"not a graph" * 10)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(Path(resolve_model("minilm").location) / name, export / name)
    code, out, err = run_cli(["eval", "--model", str(export), "--data", str(tiny_beir)], capsys, monkeypatch)
    assert code == 2, (out, err)
    assert str(export / ONNX_FILE) in err and "re-export or re-download the model" in err
    assert "Traceback" not in err
