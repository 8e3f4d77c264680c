"""ONNX export: the exported model embeds like the original and is accepted as --model."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from fieldtune.encoding import Encoder  # noqa: E402
from fieldtune.errors import ModelNotFoundError  # noqa: E402
from fieldtune.export import ExportError, export_onnx  # noqa: E402
from fieldtune.models import load_model  # noqa: E402
from fieldtune.onnx_layout import ONNX_RECORD, is_onnx_export  # noqa: E402

from .conftest import run_cli  # noqa: E402

TEXTS = [
    "Elliptic curves over finite fields carry a group law.",
    "The Laplace transform turns differential equations into algebraic ones. " * 6,
    "short",
]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return {kind: export_onnx("minilm", root / kind, int8=kind == "int8") for kind in ("fp32", "int8")}


def _reference(kind: str) -> np.ndarray:
    return Encoder("minilm", precision="fp32", use_cache=False, show_progress=False).encode(TEXTS, kind=kind)


@pytest.mark.slow
def test_fp32_export_matches_sentence_transformers(exports):
    encoder = Encoder(str(exports["fp32"]), use_cache=False, show_progress=False)
    for kind in ("query", "document"):
        cosine = (encoder.encode(TEXTS, kind=kind) * _reference(kind)).sum(axis=1)
        assert cosine.min() > 0.9999


@pytest.mark.slow
def test_int8_export_stays_close(exports):
    encoder = Encoder(str(exports["int8"]), use_cache=False, show_progress=False)
    cosine = (encoder.encode(TEXTS, kind="document") * _reference("document")).sum(axis=1)
    assert cosine.mean() > 0.98
    assert encoder.dimension == 384
    record = json.loads((exports["int8"] / ONNX_RECORD).read_text())
    assert record["int8"] is True and record["pooling"] == "mean" and record["normalize"] is True


@pytest.mark.slow
def test_export_is_recognised_and_not_trainable(exports):
    assert is_onnx_export(exports["fp32"])
    with pytest.raises(ModelNotFoundError, match="cannot be loaded"):
        load_model(str(exports["fp32"]))


def test_export_refuses_a_directory_holding_something_else(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="empty directory"):
        export_onnx("minilm", tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_cli_export_then_eval(tmp_path, tiny_beir, capsys, monkeypatch):
    out = tmp_path / "cli-export"
    export = ["export", "--model", "minilm", "--out", str(out), "--onnx", "--int8"]
    code, stdout, stderr = run_cli(export, capsys, monkeypatch)
    assert code == 0, stdout + stderr
    assert is_onnx_export(out)
    evaluate = ["eval", "--model", str(out), "--data", str(tiny_beir), "--baseline", "bm25"]
    code, stdout, _ = run_cli(evaluate, capsys, monkeypatch)
    assert code == 0 and "nDCG@10" in stdout
    code, stdout, stderr = run_cli(["export", "--model", "minilm", "--out", str(tmp_path / "x")], capsys, monkeypatch)
    assert code != 0 and "--onnx" in stdout + stderr


@pytest.mark.slow
def test_export_keeps_a_final_rotation(tmp_path):
    from fieldtune.rotation import add_rotation

    model = load_model("minilm", device="cpu")
    model.save(str(tmp_path / "rotated"))
    add_rotation(tmp_path / "rotated", TEXTS * 4, precision="fp32")
    out = export_onnx(str(tmp_path / "rotated"), tmp_path / "onnx")
    exported = Encoder(str(out), use_cache=False, show_progress=False).encode(TEXTS, kind="document")
    reference_encoder = Encoder(str(tmp_path / "rotated"), precision="fp32", use_cache=False, show_progress=False)
    reference = reference_encoder.encode(TEXTS, kind="document")
    assert (exported * reference).sum(axis=1).min() > 0.9999
