"""Index backends (registry, exact and usearch through the Protocol) and the typed index manifest.

Small random vectors written as a real segment; no model (a few seconds).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fieldtune.registry import UnknownNameError
from fieldtune.search.backends import (
    INDEX_BACKENDS,
    StoredVectors,
    VectorBackend,
    choose,
    next_backend,
    open_backend,
    stored_backend,
)
from fieldtune.search.manifest import (
    INDEX_FORMAT,
    INDEX_MANIFEST,
    DenseSettings,
    IndexManifest,
)
from fieldtune.search.options import IndexNotFoundError, Storage
from fieldtune.search.store import Segment, VectorStore, write_segment
from fieldtune.types import Chunk, Document

DIM = 32
DIMS = [32]
SETTINGS = DenseSettings(
    threshold=100, config={"connectivity": 16, "expansion_add": 64, "expansion_search": 128}
)


def unit_rows(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def segment(directory: Path, vectors: np.ndarray, first: int = 0) -> Segment:
    """A segment of ``vectors``, one placeholder document and chunk per row."""
    ids = [str(first + i) for i in range(len(vectors))]
    docs = [Document(id=doc_id, text="") for doc_id in ids]
    chunks = [Chunk(f"{doc_id}#0", doc_id, 0, "", 0, 0, 0) for doc_id in ids]
    write_segment(directory, docs, chunks, vectors, storage=Storage.INT8, dims=DIMS)
    return Segment(directory, Storage.INT8, DIMS)


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return unit_rows(1500, 1)


@pytest.fixture(scope="module")
def stored(corpus: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> StoredVectors:
    store = VectorStore([segment(tmp_path_factory.mktemp("seg") / "000001", corpus)])
    deleted = np.zeros(store.rows, dtype=bool)
    deleted[:50] = True
    return StoredVectors(store, deleted, DIM)


def true_top(stored: StoredVectors, queries: np.ndarray, k: int) -> list[list[int]]:
    scores = stored.store.scores(queries, DIM)
    scores[:, stored.deleted] = -np.inf
    return [np.argsort(-row, kind="stable")[:k].tolist() for row in scores]


def test_registry_lists_the_backends_and_rejects_duplicates_and_typos() -> None:
    assert list(INDEX_BACKENDS) == ["exact", "pgvector", "usearch"]
    for name, backend in INDEX_BACKENDS.items():
        assert backend.name == name
        assert isinstance(backend.exact, bool)
    with pytest.raises(ValueError, match="already registered"):
        INDEX_BACKENDS.register("exact", INDEX_BACKENDS["exact"])
    with pytest.raises(UnknownNameError, match="did you mean 'usearch'.*known: exact, pgvector, usearch"):
        INDEX_BACKENDS["usearh"]


def test_choice_follows_the_threshold_the_saved_files_or_the_backend_named(
    stored: StoredVectors,
) -> None:
    assert choose(SETTINGS, 100) == "exact" and choose(SETTINGS, 101) == "usearch"
    assert stored_backend(SETTINGS) == "exact"
    assert stored_backend(DenseSettings(100, {}, "ann/000001.graph")) == "usearch"
    named = DenseSettings(100, {}, None, backend="exact")
    assert choose(named, 10**6) == "exact" and stored_backend(named) == "exact"
    assert named.to_dict()["backend"] == "exact" and "backend" not in SETTINGS.to_dict()
    assert DenseSettings.from_dict(named.to_dict()) == named
    elsewhere = DenseSettings(100, {}, "vectors_000001", backend="faiss")
    with pytest.raises(UnknownNameError, match="'faiss'.*known: exact, pgvector, usearch"):
        open_backend(Path("unused"), elsewhere, stored)


def test_exact_backend_returns_the_true_top_rows_with_cosines(stored: StoredVectors) -> None:
    backend = INDEX_BACKENDS["exact"].build(stored, SETTINGS)
    assert isinstance(backend, VectorBackend) and backend.exact
    queries = unit_rows(5, 2)
    hits = backend.search(queries, 10, DIM)
    assert [h.keys.tolist() for h in hits] == true_top(stored, queries, 10)
    assert not any((h.keys < 50).any() for h in hits)  # deleted rows never come back
    expected = stored.store.row_scores(hits[0].keys, queries[0], DIM)
    assert np.allclose(hits[0].scores, expected, atol=1e-6)
    assert backend.save(Path("unused"), "000001") is None
    assert backend.describe() == {"name": "exact", "rows": 1450}


def test_usearch_backend_through_the_protocol(
    stored: StoredVectors, corpus: np.ndarray, tmp_path: Path
) -> None:
    pytest.importorskip("usearch")
    backend = next_backend(SETTINGS, stored)  # 1450 live rows > threshold 100
    assert backend.name == "usearch" and not backend.exact
    queries = corpus[100:110]
    found = backend.search(queries, 5, DIM)
    assert [int(h.keys[0]) for h in found] == list(range(100, 110))
    assert not any((h.keys < 50).any() for h in backend.search(unit_rows(20, 3), 50, DIM))
    relative = backend.save(tmp_path, "000001")
    assert relative == "ann/000001.graph" and (tmp_path / relative).is_dir()
    saved = DenseSettings(SETTINGS.threshold, SETTINGS.config, relative)
    opened = open_backend(tmp_path, saved, stored)
    assert [h.keys.tolist() for h in opened.search(queries, 5, DIM)] == [
        h.keys.tolist() for h in found
    ]
    assert opened.describe()["rows"] == 1450 and opened.describe()["file"] == relative

    # A delete only: the same graph file, the new tombstones filtered at search time.
    deleted = stored.deleted.copy()
    deleted[100:105] = True
    fewer = StoredVectors(stored.store, deleted, DIM)
    removed = np.arange(100, 105)
    after = next_backend(saved, fewer, opened, first_new_row=fewer.store.rows, removed=removed)
    assert after.save(tmp_path, "000002") == relative
    hits = after.search(queries, 5, DIM)
    assert not any(np.isin(h.keys, removed).any() or (h.keys < 50).any() for h in hits)
    assert [int(h.keys[0]) for h in hits[5:]] == list(range(105, 110))

    # An add: a new graph holding the new rows; the saved one is left as it was.
    extra = unit_rows(40, 4)
    store = VectorStore([*stored.store.segments, segment(tmp_path / "000003", extra, first=1500)])
    grown = StoredVectors(store, np.r_[deleted, np.zeros(40, dtype=bool)], DIM)
    added = next_backend(saved, grown, after, first_new_row=1500, removed=removed)
    assert added.save(tmp_path, "000003") == "ann/000003.graph"
    assert [int(h.keys[0]) for h in added.search(extra[:5], 3, DIM)] == list(range(1500, 1505))
    assert len(open_backend(tmp_path, saved, stored).graph) == 1450

    # Below the threshold again: back to exact search, no graph.
    small = DenseSettings(10_000, SETTINGS.config, "ann/000003.graph")
    assert next_backend(small, grown, added, first_new_row=1540).name == "exact"


def test_manifest_round_trip_keeps_keys_order_and_unknown_keys(tmp_path: Path) -> None:
    data = {
        "format": INDEX_FORMAT,
        "fieldtune_version": "0.1.0",
        "created": "2026-01-01T00:00:00+0000",
        "updated": "2026-01-02T00:00:00+0000",
        "source": "corpus.jsonl",
        "model": {"spec": "minilm", "location": "/models/minilm", "kind": "bundled"},
        "precision": "fp32",
        "model_dimension": 384,
        "dimension": 256,
        "dims": [256, 128, 64],
        "storage": "int8",
        "chunking": {"max_tokens": 256, "overlap": 32},
        "ann": {"threshold": 20000, "config": {"connectivity": 48}, "file": "ann/000002.graph"},
        "versions": {"numpy": "2.0"},
        "generation": 2,
        "generation_dir": "generations/000002",
        "segments": [{"name": "segments/000001", "rows": 10, "documents": 4}],
        "bm25": True,
        "counts": {"documents": 4, "chunks": 10, "rows": 10, "deleted_rows": 0, "segments": 1},
        "future_key": {"kept": True},
    }
    manifest = IndexManifest.from_dict(data)
    assert manifest.storage is Storage.INT8 and manifest.dims == (256, 128, 64)
    assert manifest.ann.file == "ann/000002.graph" and manifest.counts.chunks == 10
    assert manifest.model.load_spec == "minilm"
    assert list(manifest.to_dict().items()) == list(data.items())
    assert manifest.referenced() == {"segments/000001", "generations/000002", "ann/000002.graph"}
    manifest.write(tmp_path)
    assert json.loads((tmp_path / INDEX_MANIFEST).read_text()) == data
    assert IndexManifest.read(tmp_path) == manifest


def test_manifest_read_errors_say_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / INDEX_MANIFEST).write_text(json.dumps({"format": 99}))
    with pytest.raises(IndexNotFoundError, match="index format 99, this fieldtune reads 1"):
        IndexManifest.read(tmp_path)
    (tmp_path / INDEX_MANIFEST).write_text(json.dumps({"format": INDEX_FORMAT, "dimension": 8}))
    with pytest.raises(IndexNotFoundError, match="malformed manifest"):
        IndexManifest.read(tmp_path)
    (tmp_path / INDEX_MANIFEST).write_text("{not json")
    with pytest.raises(IndexNotFoundError, match="unreadable manifest"):
        IndexManifest.read(tmp_path)
