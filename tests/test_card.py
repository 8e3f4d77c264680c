"""The model card reads the build's records through their typed readers and prints what was actually run."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fieldtune.card import GATE_EXPLAINED, render_card, write_card
from fieldtune.chunking import ChunkingConfig
from fieldtune.concepts.graph import ConceptGraph
from fieldtune.evaluate.result import EvaluationResult
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
