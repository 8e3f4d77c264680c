"""``fieldtune build --ray local``: the build's corpus encodes run on Ray and give the vectors a local build gives.

Two real tiny builds (tests/build_fixture.py, up to the mining stage, whose corpus encode is the
build's largest) with their own embedding caches, one with ``--ray local``, one without; every
document embedding either build encoded is compared. Real Ray (local, 2 CPUs), real minilm, fp32.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from tests.build_fixture import write_corpus
from tests.conftest import run_cli

ray = pytest.importorskip("ray")

TOLERANCE = 1e-6


def _mine(corpus: Path, out: Path, cache: Path, extra: list[str], capsys, monkeypatch) -> dict[str, np.ndarray]:
    """Run the build up to mining with its own cache; the document embeddings it encoded, by cache file name."""
    monkeypatch.setenv("FIELDTUNE_CACHE", str(cache))
    code, _, err = run_cli(["mine", str(corpus), "--out", str(out), *extra], capsys, monkeypatch)
    assert code == 0, err
    return {path.name: np.load(path) for path in sorted((cache / "embeddings").glob("*-document-*.npy"))}


@pytest.mark.slow
def test_build_with_ray_encodes_the_corpus_on_ray_with_local_vectors(tmp_path, capsys, monkeypatch, caplog):
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    local = _mine(corpus, tmp_path / "local", tmp_path / "cache-local", [], capsys, monkeypatch)
    with caplog.at_level(logging.INFO, logger="fieldtune.encoders.ray"):
        on_ray = _mine(corpus, tmp_path / "ray", tmp_path / "cache-ray",
                       ["--ray", "local", "--ray-workers", "2"], capsys, monkeypatch)
    encoded_on_ray = [r.getMessage() for r in caplog.records if "on Ray" in r.getMessage()]
    assert encoded_on_ray, "no corpus encode went to Ray"
    assert not ray.is_initialized()  # the Ray the build started is shut down with it
    # same texts, same model, same precision: the same cache keys, and vectors within fp32 noise
    assert local and set(on_ray) == set(local)
    assert sum(len(v) for v in local.values()) >= 80  # the corpus's chunks, not only a few names
    for name, vectors in local.items():
        assert on_ray[name].shape == vectors.shape
        if len(vectors):  # an empty encode (no derived texts to add) is cached as zero rows
            assert float(np.abs(on_ray[name] - vectors).max()) <= TOLERANCE, name


@pytest.mark.slow
def test_whole_build_runs_with_its_corpus_encodes_on_ray(tmp_path, monkeypatch, caplog):
    # every stage that encodes (mining, gate, evaluation) through the Ray backend, to the card
    from fieldtune.build import BuildConfig, run_build
    from fieldtune.encoders.ray import RaySettings, corpus_on_ray

    monkeypatch.setenv("FIELDTUNE_CACHE", str(tmp_path / "cache"))
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    config = BuildConfig(budget_minutes=5, train_overrides={"max_seq_length": 48, "batch_size": 8, "max_steps": 2,
                                                            "eval_every_steps": 2})
    with caplog.at_level(logging.INFO), corpus_on_ray(RaySettings(workers=2)):
        result = run_build(corpus, tmp_path / "out", config)
    stage_of_encode, stage = [], None
    for record in caplog.records:
        if record.name == "fieldtune.build" and record.getMessage().startswith("stage "):
            stage = record.getMessage().split()[1]
        elif "texts on Ray" in record.getMessage():
            stage_of_encode.append(stage)
    assert {"mine", "gate", "eval"} <= set(stage_of_encode), stage_of_encode
    assert (result.model_dir / "README.md").exists() and "derived" in result.evaluations
    assert not ray.is_initialized()


def test_ray_workers_without_ray_is_refused(tmp_path, capsys, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus.jsonl", n_docs=5)
    code, _, err = run_cli(["mine", str(corpus), "--out", str(tmp_path / "out"), "--ray-workers", "2"],
                           capsys, monkeypatch)
    assert code == 2 and "--ray-workers needs --ray" in err
    assert not (tmp_path / "out").exists()


def test_unreachable_cluster_fails_before_any_stage(tmp_path, capsys, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus.jsonl", n_docs=5)
    code, _, err = run_cli(["mine", str(corpus), "--out", str(tmp_path / "out"), "--ray", "127.0.0.1:1"],
                           capsys, monkeypatch)
    assert code == 2 and "127.0.0.1:1" in err
    assert not (tmp_path / "out").exists()
