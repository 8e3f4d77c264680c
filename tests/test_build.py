"""A tiny end-to-end build: loadable model, card, manifest; skip-unchanged and resume; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fieldtune.build import STAGES, BuildConfig, CorpusTooSmallError, run_build

from .build_fixture import write_corpus

TINY_TRAINING = {"max_seq_length": 48, "batch_size": 8, "max_steps": 4, "eval_every_steps": 2}


def _config(**overrides) -> BuildConfig:
    return BuildConfig(budget_minutes=5, train_overrides=dict(TINY_TRAINING), **overrides)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("build")
    corpus = write_corpus(root / "corpus.jsonl")
    run_build(corpus, root / "out", _config())
    return corpus, root / "out"


@pytest.mark.slow
def test_build_produces_model_card_and_manifest(built: tuple[Path, Path]) -> None:
    from sentence_transformers import SentenceTransformer

    _, out = built
    manifest = json.loads((out / "manifest.json").read_text())["stages"]
    assert list(manifest) == [name for name, stage in STAGES.items() if stage.enabled(_config())]
    assert manifest["pairs"]["stats"]["leakage"]["clean"]
    model = SentenceTransformer(str(out / "model"))
    record = json.loads((out / "model" / "fieldtune.json").read_text())
    assert record["base_model"] == "minilm"
    query = model.encode_query(["Kostka polynomial"])
    assert query.shape == (1, 384)
    card = (out / "model" / "README.md").read_text()
    for needle in ("Derived test set", "nDCG@10", "95% CI", "concept graph", "Pair kind", "is *not*"):
        assert needle in card
    gate = json.loads((out / "model" / "gate.json").read_text())
    assert gate["chosen"] in {"trained", "averaged", "base"} and set(gate["scores"]) == {"trained", "averaged", "base"}
    # gate.json travels with the model (push uploads it): no path of the builder's machine in it
    assert str(out.resolve()) not in (out / "model" / "gate.json").read_text()
    assert (out / "derived-dev" / "qrels" / "test.tsv").exists()
    derived = json.loads((out / "eval" / "derived.json").read_text())
    assert {"minilm", "bm25"} <= set(derived["systems"])
    assert (out / "graph.graphml").exists() and (out / "derived" / "qrels" / "test.tsv").exists()


@pytest.mark.slow
def test_rebuild_reuses_every_stage(built: tuple[Path, Path]) -> None:
    corpus, out = built
    result = run_build(corpus, out, _config())
    assert all(stage.skipped for stage in result.stages), [(s.name, s.skipped) for s in result.stages]


@pytest.mark.slow
def test_interrupted_build_resumes_without_redoing_finished_stages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fieldtune.training.trainer as trainer

    corpus = write_corpus(tmp_path / "corpus.jsonl")
    real_train = trainer.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_build(corpus, tmp_path / "out", _config())
    stages = json.loads((tmp_path / "out" / "manifest.json").read_text())["stages"]
    assert list(stages) == ["ingest", "chunk", "concepts", "pairs", "mine"]
    monkeypatch.setattr(trainer, "train", real_train)
    result = run_build(corpus, tmp_path / "out", _config())
    skipped = {s.name: s.skipped for s in result.stages}
    assert skipped == {"ingest": True, "chunk": True, "concepts": True, "pairs": True, "mine": True,
                       "train": False, "gate": False, "eval": False, "card": False}


def test_corpus_too_small(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", n_docs=5)
    with pytest.raises(CorpusTooSmallError, match="5 documents"):
        run_build(corpus, tmp_path / "out", _config())


def test_no_concepts_found_keeps_what_was_built(tmp_path: Path) -> None:
    from fieldtune.concepts import NoConceptsError

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"_id": str(i), "text": f"Item {i} alpha."}) + "\n" for i in range(25)))
    with pytest.raises(NoConceptsError):
        run_build(corpus, tmp_path / "out", _config())
    assert (tmp_path / "out" / "chunks.jsonl").exists()
    assert set(json.loads((tmp_path / "out" / "manifest.json").read_text())["stages"]) == {"ingest", "chunk"}


def test_budget_too_short_for_one_step(tmp_path: Path) -> None:
    from fieldtune.training import BudgetTooSmallError

    corpus = write_corpus(tmp_path / "corpus.jsonl")
    with pytest.raises(BudgetTooSmallError, match="budget"):
        run_build(
            corpus,
            tmp_path / "out",
            BuildConfig(budget_minutes=0.0005, train_overrides={"max_seq_length": 48, "batch_size": 8}),
        )
    assert (tmp_path / "out" / "mined" / "train.jsonl").exists()


def test_build_refuses_to_run_in_several_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun every rank would run every stage into one work directory: the message gives the recipe."""
    from fieldtune.build import run_build
    from fieldtune.config import BuildConfigError

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(BuildConfigError, match="torchrun --nproc_per_node=N -m fieldtune train"):
        run_build(tmp_path / "corpus.jsonl", tmp_path / "out")
    assert not (tmp_path / "out").exists()
