"""Encoder backends: the registry picks one per model, names are checked, and the Encoder works over any backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fieldtune.encoders import ENCODER_BACKENDS, BackendSpec, backend_for, load_backend, onnx, sentence_transformers
from fieldtune.encoding import Encoder, normalize
from fieldtune.models import ModelRef, resolve_model
from fieldtune.onnx_layout import ONNX_FILE, ONNX_RECORD
from fieldtune.registry import UnknownNameError

TEXTS = ["Kostka numbers count tableaux.", "The heat equation describes diffusion.", "short"]


class KeywordBackend:
    """A deterministic backend: one axis per keyword, counted in the text (exact, model-free)."""

    KEYWORDS = ("kostka", "heat", "short")
    max_seq_length = 16
    tokenizer = None

    def __init__(self) -> None:
        self.calls = 0

    def get_embedding_dimension(self) -> int:
        return len(self.KEYWORDS)

    def _vectors(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return np.array([[3.0 * text.lower().count(word) for word in self.KEYWORDS] for text in texts])

    def encode_query(self, texts: list[str], *, batch_size: int, show_progress: bool) -> np.ndarray:
        return self._vectors(texts)

    def encode_document(self, texts: list[str], *, batch_size: int, show_progress: bool) -> np.ndarray:
        return self._vectors(texts)


@pytest.fixture
def keyword_backend(monkeypatch: pytest.MonkeyPatch) -> KeywordBackend:
    """The keyword backend registered as ``keywords`` for one test only."""
    backend = KeywordBackend()
    spec = BackendSpec(handles=lambda ref: False, load=lambda ref, precision: backend)
    monkeypatch.setitem(ENCODER_BACKENDS._items, "keywords", spec)
    return backend


def _fake_export(root: Path) -> Path:
    root.mkdir()
    (root / ONNX_RECORD).write_text(json.dumps({"dimension": 3, "max_seq_length": 16}))
    (root / ONNX_FILE).write_bytes(b"")
    return root


def test_backends_are_registered_specialised_first() -> None:
    assert list(ENCODER_BACKENDS)[-1] == "sentence-transformers"
    assert "onnx" in ENCODER_BACKENDS


def test_an_export_directory_picks_onnx_and_anything_else_sentence_transformers(tmp_path: Path) -> None:
    export = _fake_export(tmp_path / "export")
    assert backend_for(ModelRef(spec=str(export), location=str(export), kind="local")) == "onnx"
    assert backend_for(resolve_model("minilm")) == "sentence-transformers"
    assert backend_for(resolve_model("minilm"), "onnx") == "onnx"  # a name given wins


def test_unknown_backend_name_lists_known_and_close_names() -> None:
    with pytest.raises(UnknownNameError) as error:
        backend_for(resolve_model("minilm"), "onxx")
    message = str(error.value)
    assert "unknown encoder backend 'onxx'" in message and "did you mean 'onnx'" in message
    assert "sentence-transformers" in message
    with pytest.raises(UnknownNameError, match="unknown encoder backend 'spark'"):
        Encoder("minilm", backend="spark")


def test_a_backend_name_is_taken_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        ENCODER_BACKENDS.register("onnx", BackendSpec(handles=onnx.handles, load=onnx.load))


def test_implementations_have_the_backend_methods() -> None:
    for cls in (onnx.OnnxModel, sentence_transformers.SentenceTransformersBackend):
        for method in ("encode_query", "encode_document", "get_embedding_dimension"):
            assert callable(getattr(cls, method)), (cls, method)


def test_encoder_normalises_and_caches_over_any_backend(keyword_backend: KeywordBackend) -> None:
    encoder = Encoder("minilm", precision="fp32", backend="keywords", show_progress=False)
    first = encoder.encode(TEXTS, kind="document")
    np.testing.assert_allclose(first, np.eye(3, dtype=np.float32))
    assert first.dtype == np.float32 and encoder.dimension == 3
    again = Encoder("minilm", precision="fp32", backend="keywords", show_progress=False)
    np.testing.assert_array_equal(again.encode(TEXTS, kind="document"), first)
    assert keyword_backend.calls == 1  # the second encoder read the cache
    assert encoder.encode([], kind="query").shape == (0, 3)


def test_sentence_transformers_backend_embeds_like_sentence_transformers() -> None:
    backend = load_backend(resolve_model("minilm"), "fp32")
    assert isinstance(backend, sentence_transformers.SentenceTransformersBackend)
    assert backend.get_embedding_dimension() == 384 and backend.max_seq_length == backend.model.max_seq_length
    expected = normalize(np.asarray(backend.model.encode_query(TEXTS, convert_to_numpy=True), dtype=np.float32))
    encoded = Encoder("minilm", precision="fp32", use_cache=False, show_progress=False).encode(TEXTS, kind="query")
    np.testing.assert_allclose(encoded, expected, atol=1e-6)
