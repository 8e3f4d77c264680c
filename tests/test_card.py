"""The model card reads the build's records through their typed readers and prints what was actually run."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fieldtune.card import GATE_EXPLAINED, render_card, write_card
from fieldtune.chunking import ChunkingConfig
from fieldtune.concepts.graph import ConceptGraph
from fieldtune.evaluate.result import EvaluationResult
from fieldtune.hub_metadata import hub_base_model, read_model_index
from fieldtune.mining import MiningConfig
from fieldtune.model_record import GateRecord, ModelRecord
from fieldtune.pairs import PairConfig
from fieldtune.stages.gate import QUERY_SIDE_CANDIDATES
from fieldtune.types import Concept, ConceptEdge, EdgeType
from fieldtune.workdir import write_json
from tests.test_records import eval_json, training_record


def card_config() -> Any:
    """The parts of a BuildConfig the card prints."""
    return SimpleNamespace(base="minilm", chunking=ChunkingConfig(), pairs=PairConfig(), mining=MiningConfig())


def write_build(root: Path, record: dict[str, Any], gate: GateRecord | None) -> None:
    """The files a finished build leaves for the card: manifest, graph, model records, one evaluation."""
    stats = {"ingest": {"documents": 12}, "chunk": {"chunks": 40},
             "pairs": {"counts": {"train": {"concept_name": 30}, "dev": {"concept_name": 3}},
                       "dropped": {}, "leakage": {"clean": True, "train_anchors": 30, "held_out_anchors": 6}},
             "mine": {"train": {"mined": 25}}}
    write_json(root / "manifest.json", {"stages": {name: {"key": name, "stats": s} for name, s in stats.items()}})
    concepts = [Concept(id="hall-algebra", name="Hall algebra", score=2.0, aliases=("Hall algebras",),
                        description="The Hall algebra | of a category.", doc_ids=("d1", "d2")),
                Concept(id="kostka-number", name="Kostka number", score=1.0, doc_ids=("d3",))]
    edges = [ConceptEdge("hall-algebra", "kostka-number", EdgeType.COOCCURS, 0.5),
             ConceptEdge("hall-algebra", "kostka-number", EdgeType.GENERALIZES, 1.0)]
    ConceptGraph(concepts, edges).write(root)
    ModelRecord.from_dict(record).write(root / "model")
    if gate is not None:
        gate.write(root / "model")
    EvaluationResult.from_dict(eval_json()).write(root / "eval" / "derived.json")


def test_card_prints_the_loss_that_was_trained_and_the_build_facts(tmp_path: Path) -> None:
    gate = GateRecord(chosen="averaged", scores={"trained": 0.5, "averaged": 0.52, "base": 0.49})
    write_build(tmp_path, training_record(), gate)
    card = render_card(tmp_path, corpus="corpus.jsonl", config=card_config())
    assert "Loss: CachedMultipleNegativesRankingLoss inside MatryoshkaLoss" in card
    assert "early stopping on dev loss" in card
    assert "(12 documents, 40 chunks of at most" in card
    assert "nDCG@10: trained 0.5000, averaged 0.5200, base 0.4900." in card
    assert "| Hall algebra | 2 | 1 | The Hall algebra \\| of a category. |" in card
    assert "2 concepts and 2 edges (cooccurs: 1, generalizes: 1)" in card
    assert "Example edges: Hall algebra —generalizes→ Kostka number." in card
    assert "| **run/model** (under test) | 384 | 0.6000 |" in card
    assert "| config | `{'base': 'minilm', 'loss': 'cached_mnrl'" in card
    assert "truncate_dim=64" in card and 'Prompts saved with the model: {"query": "query: "}.' in card


def test_card_of_a_build_without_gate_record_or_early_stopping(tmp_path: Path) -> None:
    record = training_record()
    record["config"] = {**record["config"], "loss": "mnrl", "early_stopping_patience": 0}
    write_build(tmp_path, record, None)
    path = write_card(tmp_path, corpus="corpus.jsonl", config=card_config())
    card = path.read_text(encoding="utf-8")
    assert path == tmp_path / "model" / "README.md"
    assert "## Quality gate" not in card
    assert "Loss: MultipleNegativesRankingLoss inside MatryoshkaLoss (sentence-transformers), no-duplicates batches, " \
           "no early stopping" in card
    assert json.loads((tmp_path / "model" / "fieldtune.json").read_text())["config"]["loss"] == "mnrl"


def test_card_names_a_loss_this_version_does_not_know_by_its_recorded_name(tmp_path: Path) -> None:
    record = training_record()
    record["config"] = {**record["config"], "loss": "margin_mse_from_the_future"}
    write_build(tmp_path, record, None)
    card = render_card(tmp_path, corpus="corpus.jsonl", config=card_config())
    assert "Loss: `margin_mse_from_the_future` inside MatryoshkaLoss" in card


def test_the_card_explains_every_choice_the_gate_can_make() -> None:
    """A query-side build's gate installs 'adapted' or 'adapted-averaged'; the card crashed on them."""
    assert {"trained", "averaged", "base", *QUERY_SIDE_CANDIDATES} <= set(GATE_EXPLAINED)


def index_by_key(card_path: Path) -> dict[tuple[str, str, str], float]:
    """The card's model-index as parsed by huggingface_hub (offline), keyed (set, dimension, metric)."""
    from huggingface_hub import ModelCard

    card = ModelCard.load(card_path)
    scores = read_model_index(card.data)
    keyed = {(s.set_name, s.dim, s.metric): s.value for s in scores}
    assert len(keyed) == len(scores), "a (set, dimension, metric) filed twice"
    return keyed


def expected_index(evaluations: dict[str, EvaluationResult]) -> dict[tuple[str, str, str], float]:
    """Every number of every model under test, read through EvaluationResult.score."""
    return {(name, dim, metric): result.score(metric, dim)
            for name, result in evaluations.items() for dim in result.system().dims
            for metric in result.settings.metrics}


def test_card_metadata_parses_and_its_model_index_round_trips_the_evaluations(tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    write_build(tmp_path, training_record(), None)
    external = eval_json()
    external["systems"]["run/model"]["results"]["384"]["ndcg@10"] = 0.123456789012345
    EvaluationResult.from_dict(external).write(tmp_path / "eval" / "scifact.json")
    path = write_card(tmp_path, corpus="corpus.jsonl", config=card_config())
    evaluations = {p.stem: EvaluationResult.read(p) for p in (tmp_path / "eval").glob("*.json")}

    assert index_by_key(path) == expected_index(evaluations)
    data = ModelCard.load(path).data
    assert data.library_name == "sentence-transformers" and data.pipeline_tag == "sentence-similarity"
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"  # the registered name's hub id
    assert data.datasets == ["BeIR/scifact"]  # the derived set lives on this machine only
    assert {"sentence-transformers", "matryoshka", "loss:cached_mnrl"} <= set(data.tags)
    assert data.model_name == tmp_path.name
    card = path.read_text(encoding="utf-8")
    assert "**Gain over minilm** (ndcg@10, 384 dimensions): +0.0500, 95% CI [+0.0400, +0.0600]" in card
    assert "## Quality gate" not in card and "## The concept graph" in card and "Leakage check: clean" in card


def test_card_of_a_model_from_a_local_base_names_no_base_model(tmp_path: Path) -> None:
    """A local directory is not a Hub id: base_model is left out rather than pointing nowhere."""
    from huggingface_hub import ModelCard

    record = training_record()
    record["base_model"] = str(tmp_path)
    write_build(tmp_path, record, None)
    data = ModelCard.load(write_card(tmp_path, corpus="corpus.jsonl", config=card_config())).data
    assert data.base_model is None
    assert hub_base_model("someone/their-model") == "someone/their-model"


@pytest.mark.slow
def test_card_of_a_real_build_round_trips_to_eval_json(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The acceptance check of issue 12: the card's model-index says what `fieldtune eval --json` measures."""
    import fieldtune

    from .build_fixture import write_corpus
    from .conftest import run_cli
    from .test_build import TINY_TRAINING

    corpus = write_corpus(tmp_path / "corpus.jsonl")
    result = fieldtune.build(corpus, out=tmp_path / "out", budget_minutes=5, train_overrides=dict(TINY_TRAINING))
    code, _, err = run_cli(["eval", "--model", str(result.model_dir), "--data", str(tmp_path / "out" / "derived"),
                            "--baseline", "base", "--baseline", "bm25", "--json", str(tmp_path / "eval.json")],
                           capsys, monkeypatch)
    assert code == 0, err
    from_cli = EvaluationResult.read(tmp_path / "eval.json")
    card_numbers = index_by_key(result.model_dir / "README.md")
    assert card_numbers == expected_index({"derived": from_cli})
    assert len(card_numbers) == len(from_cli.system().dims) * len(from_cli.settings.metrics) >= 8


def test_card_with_figures_links_the_plots_it_wrote_beside_it(tmp_path: Path) -> None:
    """The plots go into model/ (a push uploads them with the card) and the card links them by relative path."""
    pytest.importorskip("matplotlib")
    write_build(tmp_path, training_record(), None)
    card = write_card(tmp_path, corpus="corpus.jsonl", config=card_config(), figures=True).read_text(encoding="utf-8")
    pictures = sorted((tmp_path / "model" / "figures").glob("*.png"))
    assert pictures and all(p.read_bytes().startswith(b"\x89PNG") for p in pictures)
    for picture in pictures:
        assert f"](figures/{picture.name})" in card
    assert card.index("### Figures") > card.index("### Derived test set")
    assert "### Figures" not in write_card(tmp_path, corpus="corpus.jsonl", config=card_config()).read_text()
