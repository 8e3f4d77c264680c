"""The sharded HNSW graph on small random data (no model; a few seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fieldtune.search import ann as ann_module
from fieldtune.search.ann import HNSW_META, AnnConfig, AnnIndex, default_shards

# usearch is imported by the tests, not at collection: importing it before onnxruntime
# (collected later, in test_export) crashes the interpreter (numkong 7.8.6, onnxruntime 1.32).
pytestmark = pytest.mark.usefixtures("needs_usearch")


@pytest.fixture(scope="module")
def needs_usearch() -> None:
    pytest.importorskip("usearch")

DIM = 32


def unit_rows(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def exact(corpus: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    return np.argsort(-(queries @ corpus.T), axis=1)[:, :k]


def batches(vectors: np.ndarray, first: int = 0, size: int = 700):
    for start in range(0, len(vectors), size):
        part = vectors[start : start + size]
        yield np.arange(first + start, first + start + len(part)), part


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f[:10]) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    )


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return unit_rows(3000, 1)


@pytest.fixture(scope="module")
def graph(corpus: np.ndarray, tmp_path_factory) -> AnnIndex:
    config = AnnConfig(connectivity=16, expansion_add=64, expansion_search=128, shards=2)
    built = AnnIndex.build(DIM, batches(corpus), config, rows=len(corpus))
    built.save(tmp_path_factory.mktemp("ann") / "g.graph")
    return built


def test_rows_are_split_evenly_and_both_shards_answer(graph: AnnIndex, corpus) -> None:
    assert [len(shard) for shard in graph.shards] == [1500, 1500]
    queries = unit_rows(50, 2)
    found = graph.search(queries, 10)
    keys = np.concatenate(found)
    assert (keys < 1500).any() and (keys >= 1500).any()
    assert recall(found, exact(corpus, queries)) >= 0.9


def test_codes_use_the_int8_range(graph: AnnIndex, corpus) -> None:
    codes = graph.codes(corpus[:500])
    assert codes.dtype == np.int8 and np.abs(codes).max() >= 100
    # a unit vector of 32 components in float-to-int8 by 127 alone would stay below ~60
    step = graph.scale
    assert step is not None and graph.projection is None  # isotropic: nothing to drop
    error = np.abs(codes * step - corpus[:500])
    assert np.mean(error <= step / 2 + 1e-7) >= 0.999  # rounding, but for the rare clipped tail


def test_parallel_and_serial_search_agree(graph: AnnIndex) -> None:
    queries = unit_rows(20, 3)
    together = [graph.search(q[None], 10)[0] for q in queries]
    graph.parallel = False
    try:
        apart = [graph.search(q[None], 10)[0] for q in queries]
    finally:
        graph.parallel = True
    batch = graph.search(queries, 10)
    for a, b, c in zip(together, apart, batch, strict=True):
        assert a.tolist() == b.tolist() == c.tolist()


def test_saved_graph_reopens_with_identical_results(graph: AnnIndex) -> None:
    assert graph.path is not None
    meta = json.loads((graph.path / HNSW_META).read_text())
    assert meta["rows"] == [1500, 1500] and meta["scale"] == graph.scale
    reopened = AnnIndex.open(graph.path, graph.config)
    queries = unit_rows(20, 4)
    assert [k.tolist() for k in reopened.search(queries, 10)] == [
        k.tolist() for k in graph.search(queries, 10)
    ]


def test_add_goes_to_the_smallest_shard_and_remove_hides_rows(graph, tmp_path: Path) -> None:
    copy = graph.writable_copy()
    copy.remove(np.arange(0, 100))
    extra = unit_rows(200, 5)
    copy.add_batches(batches(extra, first=3000))
    # shard 0 had 1400 live rows after the removal, the fewest, so it got all 200
    assert len(copy) == 3100 and [len(s) for s in copy.shards] == [1600, 1500]
    copy.save(tmp_path / "next.graph")
    found = AnnIndex.open(tmp_path / "next.graph", graph.config).search(extra[:20], 5)
    assert all(int(keys[0]) == 3000 + i for i, keys in enumerate(found))
    assert not any((keys < 100).any() for keys in copy.search(unit_rows(30, 6), 50))
    assert len(AnnIndex.open(graph.path, graph.config)) == 3000  # the saved original is intact


def test_format_1_single_file_graph_still_opens(corpus, tmp_path: Path) -> None:
    import usearch.index

    old = usearch.index.Index(ndim=DIM, metric="ip", dtype="i8", connectivity=16)
    old.add(np.arange(len(corpus), dtype=np.uint64), corpus)
    old.save(str(tmp_path / "old.usearch"))
    graph = AnnIndex.open(tmp_path / "old.usearch", AnnConfig(expansion_search=128))
    assert graph.scale is None and len(graph.shards) == 1
    queries = corpus[:10]
    assert [int(keys[0]) for keys in graph.search(queries, 5)] == list(range(10))
    with pytest.raises(ValueError, match="rebuild"):
        graph.save(tmp_path / "again.graph")


def test_default_shards_follow_rows_and_cores(monkeypatch) -> None:
    monkeypatch.setattr(ann_module.os, "cpu_count", lambda: 2)
    assert default_shards(100_000) == 1
    assert default_shards(1_000_000) == 2
    monkeypatch.setattr(ann_module.os, "cpu_count", lambda: 8)
    assert default_shards(1_000_000) == 4


def test_graph_projects_onto_the_leading_directions_when_energy_is_concentrated(tmp_path) -> None:
    rng = np.random.default_rng(7)
    dim = 64
    spread = np.r_[np.ones(12), np.full(dim - 12, 0.03)].astype(np.float32)
    rows = rng.standard_normal((4000, dim)).astype(np.float32) * spread
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    queries = rows[:40] + 0.05 * rng.standard_normal((40, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    config = AnnConfig(connectivity=16, expansion_add=64, expansion_search=128, shards=1)
    graph = AnnIndex.build(dim, batches(rows), config, rows=len(rows))
    assert graph.projection is not None and graph.shards[0].ndim < dim
    # candidates from the projected graph, rescored at full dimension, find the true top 10
    found = [
        keys[np.argsort(-(rows[keys] @ q))][:10]
        for keys, q in zip(graph.search(queries, 50), queries, strict=True)
    ]
    truth = np.argsort(-(queries @ rows.T), axis=1)[:, :10]
    assert recall(found, truth) >= 0.95
    graph.save(tmp_path / "p.graph")
    reopened = AnnIndex.open(tmp_path / "p.graph", config)
    assert np.array_equal(reopened.projection, graph.projection)
    assert [k.tolist() for k in reopened.search(queries, 10)] == [
        k.tolist() for k in graph.search(queries, 10)
    ]
