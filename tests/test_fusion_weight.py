"""The hybrid fusion weight a build chooses on its dev queries, recorded in gate.json and used by the index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fieldtune.evaluate.fusion_weight import GRID, choose_dense_weight
from fieldtune.evaluate.harness import EvalOptions, run_evaluation
from fieldtune.model_record import GateRecord
from fieldtune.search import Index
from fieldtune.search.fusion import DENSE_WEIGHT
from tests.conftest import TINY_CORPUS, TINY_QRELS, TINY_QUERIES, write_beir_dir


@pytest.fixture
def dev_set(tmp_path: Path) -> Path:
    # no query text inside the corpus: the evaluation would leave such a self-hit out, the fusion does not
    return write_beir_dir(tmp_path / "dev", corpus=TINY_CORPUS[:5], queries=TINY_QUERIES, qrels=TINY_QRELS)


def test_the_chosen_weight_is_the_best_on_dev_and_ties_go_to_the_default(dev_set: Path) -> None:
    chosen = choose_dense_weight("minilm", dev_set, "fp32")
    assert chosen is not None and chosen["queries"] == 4 and chosen["metric"] == "ndcg@10"
    scores = {float(w): s for w, s in chosen["scores"].items()}
    assert sorted(scores) == list(GRID)
    best = max(scores.values())
    assert scores[chosen["dense_weight"]] == best
    tied = [w for w, s in scores.items() if s == best]
    assert chosen["dense_weight"] == min(tied, key=lambda w: abs(w - DENSE_WEIGHT))
    # weight 1 is dense retrieval alone: the same nDCG@10 as the evaluation of the model
    dense = run_evaluation("minilm", dev_set, options=EvalOptions(precision="fp32", use_cache=False))
    assert scores[1.0] == pytest.approx(dense.score("ndcg@10"), abs=1e-4)


def test_no_judged_dev_queries_means_no_choice(tmp_path: Path) -> None:
    dev = write_beir_dir(tmp_path / "dev", corpus=TINY_CORPUS[:5], queries=TINY_QUERIES, qrels=[("q1", "d1", 0)])
    assert choose_dense_weight("minilm", dev, "fp32") is None


@pytest.mark.slow
def test_an_index_of_a_built_model_uses_the_weight_its_gate_chose(tmp_path: Path) -> None:
    from fieldtune.models import load_model

    model_dir = tmp_path / "model"
    load_model("minilm", device="cpu").save(str(model_dir))
    record = GateRecord(chosen="trained", scores={"trained": 0.5}).with_hybrid(
        {"dense_weight": 0.7, "scores": {"0.7": 0.61}, "metric": "ndcg@10", "queries": 4, "dev_set": "derived-dev"})
    record.write(model_dir)
    assert GateRecord.read(model_dir).dense_weight == 0.7  # round trip through gate.json
    corpus = write_beir_dir(tmp_path / "corpus") / "corpus.jsonl"
    index = Index.build(corpus, tmp_path / "idx", model=str(model_dir), progress=False)
    assert index.dense_weight == 0.7
    assert json.loads((tmp_path / "idx" / "index.json").read_text())["dense_weight"] == 0.7
    plain = Index.build(corpus, tmp_path / "plain", model="minilm", progress=False)
    assert plain.dense_weight == DENSE_WEIGHT and "dense_weight" not in json.loads(
        (tmp_path / "plain" / "index.json").read_text())


def test_a_rotation_appended_to_a_model_leaves_its_fusion_weight_as_it_was(dev_set: Path, tmp_path: Path) -> None:
    """Why the gate chooses the weight on the winner's own (cached) encodings, not the rotated model's."""
    from fieldtune.models import load_model
    from fieldtune.rotation import add_rotation

    model_dir = tmp_path / "model"
    load_model("minilm", device="cpu").save(str(model_dir))
    before = choose_dense_weight(str(model_dir), dev_set, "fp32")
    add_rotation(model_dir, [f"{c['title']} {c['text']}" for c in TINY_CORPUS], precision="fp32")
    after = choose_dense_weight(str(model_dir), dev_set, "fp32")
    assert before is not None and after is not None
    assert after["scores"] == before["scores"] and after["dense_weight"] == before["dense_weight"]
