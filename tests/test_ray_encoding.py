"""The Ray encoder backend against local encoding: same vectors, same order, same index; Parquet shards by chunk id.

Real Ray (a local Ray of 2 CPUs, started once for the module's slow tests and shut down at its end), real
minilm, fp32 on both sides so that the only difference is where the model runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from fieldtune.encoding import Encoder, document_text
from tests.conftest import TINY_CORPUS, run_cli, write_beir_dir

ray = pytest.importorskip("ray")

from fieldtune.encoders import ray as ray_backend  # noqa: E402  (after the skip: the module needs ray to run)

SCIFACT = Path("/work/shared/data/scifact/corpus.jsonl")
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of 2 CPUs for the module (actors take one CPU each), shut down at its end."""
    settings = ray_backend.RaySettings(workers=2)
    ray_backend.configure(settings)
    ray_backend.start(settings)
    yield
    ray.shutdown()
    ray_backend.configure(ray_backend.RaySettings())


def _passages(count: int) -> list[str]:
    """Real passages of varied length (SciFact where present, else the tiny corpus repeated with numbers)."""
    if SCIFACT.exists():
        with SCIFACT.open(encoding="utf-8") as handle:
            rows = [json.loads(line) for _, line in zip(range(count), handle, strict=False)]
        return [document_text(row.get("title", ""), row["text"]) for row in rows]
    return [f"{i}: {TINY_CORPUS[i % len(TINY_CORPUS)]['text']}" * (1 + i % 3) for i in range(count)]


def _encoder(backend: str | None) -> Encoder:
    return Encoder("minilm", precision="fp32", backend=backend, use_cache=False, show_progress=False)


@pytest.mark.slow
def test_ray_vectors_equal_local_vectors_in_input_order(local_ray):
    # more texts than one actor batch, in blocks spread over both actors, lengths varied: order must survive
    texts = _passages(150)
    on_ray = _encoder("ray").encode(texts, kind="document")
    local = _encoder(None).encode(texts, kind="document")
    assert on_ray.shape == local.shape
    assert float(np.abs(on_ray - local).max()) <= TOLERANCE
    # a permutation of the input comes back permuted the same way (not sorted by Ray's block order)
    order = np.random.default_rng(0).permutation(len(texts))
    shuffled = _encoder("ray").encode([texts[i] for i in order], kind="document")
    assert float(np.abs(shuffled - local[order]).max()) <= TOLERANCE


@pytest.mark.slow
def test_local_ray_workers_run_at_the_niceness_of_the_process_that_started_them(local_ray):
    # Ray's default renices workers to 15: on a shared machine the actors then yield their cores to any other job
    assert ray.get(ray.remote(num_cpus=1)(lambda: os.nice(0)).remote()) == os.nice(0)


@pytest.mark.slow
def test_queries_and_dimension_match_the_local_model(local_ray):
    encoder = _encoder("ray")
    assert encoder.backend_name == "ray"
    assert encoder.dimension == _encoder(None).dimension
    queries = ["structure constants of the Hall algebra", "which proteins help folding?"]
    assert float(np.abs(encoder.encode(queries, kind="query") - _encoder(None).encode(queries, kind="query")).max()) \
        <= TOLERANCE


@pytest.mark.slow
def test_index_on_ray_equals_local_index_and_writes_shards(local_ray, tmp_path, capsys, monkeypatch):
    corpus = write_beir_dir(tmp_path / "tiny")
    shards = tmp_path / "shards"
    code, out, err = run_cli(
        ["index", "--corpus", str(corpus), "--out", str(tmp_path / "on-ray"), "--precision", "fp32",
         "--ray", "local", "--ray-workers", "2", "--ray-shards", str(shards)], capsys, monkeypatch)
    assert code == 0, err
    code, _, err = run_cli(
        ["index", "--corpus", str(corpus), "--out", str(tmp_path / "local"), "--precision", "fp32"],
        capsys, monkeypatch)
    assert code == 0, err

    ids, vectors = ray_backend.read_shards(shards)
    assert sorted(ids) == sorted(f"{row['_id']}#0" for row in TINY_CORPUS)  # each tiny document is one chunk
    by_id = {row["_id"]: document_text(row["title"], row["text"]) for row in TINY_CORPUS}
    expected = _encoder(None).encode([by_id[chunk_id.split("#")[0]] for chunk_id in ids], kind="document")
    assert float(np.abs(vectors - expected).max()) <= TOLERANCE

    from fieldtune.search import Index

    on_ray, local = Index.open(tmp_path / "on-ray"), Index.open(tmp_path / "local")
    for query in ("semistandard tableaux", "heat diffusion", "graph vertices colours"):
        got, want = on_ray.search(query, k=5, mode="dense"), local.search(query, k=5, mode="dense")
        assert [hit.doc_id for hit in got] == [hit.doc_id for hit in want]
        assert np.allclose([hit.score for hit in got], [hit.score for hit in want], atol=TOLERANCE)


def test_ray_options_without_ray_are_refused(tmp_path, capsys, monkeypatch):
    corpus = write_beir_dir(tmp_path / "tiny")
    code, _, err = run_cli(
        ["index", "--corpus", str(corpus), "--out", str(tmp_path / "x"), "--ray-shards", str(tmp_path / "s")],
        capsys, monkeypatch)
    assert code == 2
    assert "--ray" in err
    assert not (tmp_path / "x").exists()


def test_workers_below_one_are_refused():
    with pytest.raises(ray_backend.RayEncodingError, match="at least 1"):
        ray_backend.configure(ray_backend.RaySettings(workers=0))


def test_an_unreachable_cluster_is_an_error_naming_it(tmp_path, capsys, monkeypatch):
    # Ray itself retries an unreachable cluster for minutes; nothing listens on port 1
    corpus = write_beir_dir(tmp_path / "tiny")
    running = ray.is_initialized()  # another test's local Ray may still be up: it must not be used instead
    code, _, err = run_cli(
        ["index", "--corpus", str(corpus), "--out", str(tmp_path / "x"), "--precision", "fp32",
         "--ray", "127.0.0.1:1"], capsys, monkeypatch)
    assert code == 2
    assert "no Ray cluster answers at 127.0.0.1:1" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()
    assert ray.is_initialized() == running  # the refused command started no Ray
