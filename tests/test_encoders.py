"""Encoder backends: the registry picks one per model, names are checked, and the Encoder works over any backend."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from fieldtune import embedding_cache
from fieldtune.embedding_cache import DIGESTS_SUFFIX, EmbeddingCache, text_digests
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
        self.texts: list[str] = []  # every text encoded, in order

    def get_embedding_dimension(self) -> int:
        return len(self.KEYWORDS)

    def _vectors(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts.extend(texts)
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


def _keyword_encoder() -> Encoder:
    return Encoder("minilm", precision="fp32", backend="keywords", show_progress=False)


def test_a_subset_of_cached_texts_is_read_and_only_new_texts_are_encoded(
    keyword_backend: KeywordBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIELDTUNE_CACHE", str(tmp_path))
    corpus = [f"kostka {'heat ' * i}" for i in range(6)]
    whole = _keyword_encoder().encode(corpus, kind="document")
    request = [corpus[4], "short heat", corpus[1], corpus[4]]  # reordered, repeated, one new text
    keyword_backend.texts.clear()
    part = _keyword_encoder().encode(request, kind="document")
    assert keyword_backend.texts == ["short heat"]
    np.testing.assert_array_equal(part[[0, 2, 3]], whole[[4, 1, 4]])
    np.testing.assert_allclose(part[1], _keyword_encoder().encode(["short heat"], kind="document")[0])
    keyword_backend.texts.clear()
    np.testing.assert_array_equal(_keyword_encoder().encode(request, kind="document"), part)  # now an exact hit
    assert keyword_backend.texts == []
    _keyword_encoder().encode(corpus[:2], kind="query")  # another kind: a query is not served a document's row
    assert keyword_backend.texts == corpus[:2]


def test_cache_files_without_their_digests_serve_exact_hits_but_no_rows(
    keyword_backend: KeywordBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an interrupted write can leave (vectors, no digests; or digests of another length) is never misread."""
    monkeypatch.setenv("FIELDTUNE_CACHE", str(tmp_path))
    corpus = ["kostka", "heat", "kostka heat"]
    encoder = _keyword_encoder()
    encoder.encode(corpus, kind="document")
    cache = EmbeddingCache(tmp_path / "embeddings", encoder.fingerprint(), "document")
    digests = tmp_path / "embeddings" / cache.path(corpus).name.replace(".npy", DIGESTS_SUFFIX)
    assert digests.is_file() and not list((tmp_path / "embeddings").glob(".*tmp"))
    digests.unlink()
    keyword_backend.texts.clear()
    encoder.encode(corpus, kind="document")
    assert keyword_backend.texts == []  # still an exact hit
    encoder.encode(corpus[:2], kind="document")
    assert keyword_backend.texts == corpus[:2]  # no digests: no rows taken from it
    np.save(digests, text_digests(corpus[:2]))  # digests that do not match the vectors' rows
    keyword_backend.texts.clear()
    encoder.encode(corpus[1:], kind="document")
    assert keyword_backend.texts == ["kostka heat"]  # "heat" from the two-text file (whole), not the mismatched one


def test_the_subset_search_reads_only_the_newest_files(
    keyword_backend: KeywordBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIELDTUNE_CACHE", str(tmp_path))
    monkeypatch.setattr(embedding_cache, "SUBSET_SOURCES", 1)
    _keyword_encoder().encode(["kostka"], kind="document")
    os.utime(next((tmp_path / "embeddings").glob(f"*{DIGESTS_SUFFIX}")), (1, 1))  # the oldest
    _keyword_encoder().encode(["heat"], kind="document")
    keyword_backend.texts.clear()
    _keyword_encoder().encode(["heat", "kostka"], kind="document")
    assert keyword_backend.texts == ["kostka"]  # beyond the newest file: encoded again
