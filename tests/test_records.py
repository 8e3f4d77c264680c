"""Typed records at module boundaries: EvaluationResult, ModelRecord and GateRecord read back what they write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fieldtune.errors import InputError
from fieldtune.evaluate.result import EvaluationResult
from fieldtune.model_record import GATE_RECORD, MODEL_RECORD, GateRecord, ModelRecord

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _metrics(base: float) -> dict[str, float]:
    keys = ("ndcg@10", "mrr@10", "recall@10", "recall@100", "hit@1", "hit@3", "hit@5", "map")
    return {key: base + i / 100 for i, key in enumerate(keys)}


def _difference(delta: float) -> dict[str, Any]:
    return {"delta": delta, "ci_low": delta - 0.01, "ci_high": delta + 0.01, "p_value": 0.0,
            "n_queries": 3, "n_resamples": 1000}


def eval_json() -> dict[str, Any]:
    """An ``eval --json`` file as v0.1 wrote it: a model at two dimensions, a dense baseline and BM25."""
    return {
        "dataset": {"name": "tiny", "path": "/data/tiny", "split": "test"},
        "counts": {"documents": 5, "queries": 4, "judged_queries": 3, "judgements": 4},
        "model": "run/model",
        "systems": {
            "run/model": {"kind": "dense", "model": "/w/run/model", "dimension": 384,
                          "results": {"384": _metrics(0.6), "128": _metrics(0.5)}},
            "minilm": {"kind": "dense", "model": "minilm", "dimension": 384,
                       "results": {"384": _metrics(0.55), "128": _metrics(0.45)}},
            "bm25": {"kind": "bm25", "model": None, "dimension": None, "results": {"full": _metrics(0.4)}},
        },
        "comparisons": [
            {"system": "minilm", "system_dim": "384", "model_dim": "384", "metric": "ndcg@10",
             "model_minus_system": _difference(0.05)},
            {"system": "bm25", "system_dim": "full", "model_dim": "128", "metric": "ndcg@10",
             "model_minus_system": _difference(0.1)},
        ],
        "settings": {"metrics": ["ndcg@10", "mrr@10", "recall@10", "recall@100", "hit@1", "hit@3", "hit@5", "map"],
                     "precision": "fp32", "bootstrap_resamples": 1000, "seed": 0, "confidence": 0.95,
                     "difference": "model under test minus system, per query, mean over judged queries"},
        "notes": ["baseline x is the model under test (or listed twice); not evaluated twice"],
        "seconds": {"total": 1.5, "run/model": 1.0, "minilm": 0.4, "bm25": 0.1},
    }


def test_evaluation_result_round_trips_key_for_key(tmp_path: Path) -> None:
    data = eval_json()
    result = EvaluationResult.from_dict(data)
    assert json.dumps(result.to_dict()) == json.dumps(data)  # same keys, same order, same values
    result.write(tmp_path / "r.json")
    assert EvaluationResult.read(tmp_path / "r.json") == result
    assert json.loads((tmp_path / "r.json").read_text()) == data


def test_evaluation_result_keeps_unknown_keys() -> None:
    data = {**eval_json(), "from_a_newer_version": {"x": 1}}
    result = EvaluationResult.from_dict(data)
    assert result.extra == {"from_a_newer_version": {"x": 1}}
    assert json.dumps(result.to_dict()) == json.dumps(data)


def test_score_defaults_to_the_model_under_test_at_its_full_dimension() -> None:
    result = EvaluationResult.from_dict(eval_json())
    assert result.score("ndcg@10") == pytest.approx(0.6)
    assert result.score("nDCG@10", dim=128) == pytest.approx(0.5)
    assert result.score("mrr@10", system="minilm") == pytest.approx(0.56)
    assert result.score("ndcg@10", system="bm25") == pytest.approx(0.4)  # BM25's only dimension is "full"
    assert result.full_scores("ndcg@10") == pytest.approx({"run/model": 0.6, "minilm": 0.55, "bm25": 0.4})
    assert result.system_names == ("run/model", "minilm", "bm25")
    assert result.baselines == ("minilm", "bm25")
    assert result.comparisons[1].model_minus_system.significant


def test_score_errors_name_what_exists() -> None:
    result = EvaluationResult.from_dict(eval_json())
    with pytest.raises(LookupError, match="evaluated: 384, 128"):
        result.score("ndcg@10", dim=64)
    with pytest.raises(LookupError, match="systems: run/model, minilm, bm25"):
        result.score("ndcg@10", system="e5")
    with pytest.raises(ValueError, match="unknown metric"):
        result.score("bleu")


def test_reading_a_broken_evaluation_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"model": "m"}))
    with pytest.raises(InputError, match="broken.json.*missing dataset, counts, systems, settings"):
        EvaluationResult.read(path)


def committed_evaluations(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Every evaluation in a committed results file: per set, or per protocol, set and fold (quality.py)."""
    found = [entry["result"]["evaluation"] if "result" in entry else entry
             for entry in payload.get("sets", {}).values()]
    for protocol in payload.get("protocols", {}).values():
        found += [fold["evaluation"] for entry in protocol["sets"].values() for fold in entry["folds"]]
    return found


@pytest.mark.parametrize("name", ["baselines.json", "quality.json"])
def test_the_committed_benchmark_results_round_trip(name: str) -> None:
    evaluations = committed_evaluations(json.loads((RESULTS / name).read_text()))
    assert evaluations
    for evaluation in evaluations:
        assert json.dumps(EvaluationResult.from_dict(evaluation).to_dict()) == json.dumps(evaluation)


def training_record() -> dict[str, Any]:
    """``fieldtune.json`` as training writes it (TrainResult.record())."""
    return {
        "base_model": "minilm", "matryoshka_dims": [384, 256, 128, 64], "prompts": {"query": "query: "},
        "train_pairs": 100, "dev_pairs": 10, "train_examples": 100, "steps": 7, "best_step": 5,
        "best_eval_loss": 0.25, "stopped_because": "budget", "seed": 0, "precision": "fp32", "device": "cpu",
        "seconds": 12.3, "resumed_from": None,
        "config": {"base": "minilm", "loss": "cached_mnrl", "batch_size": 32, "early_stopping_patience": 3},
    }


def test_model_record_round_trips_key_for_key(tmp_path: Path) -> None:
    data = training_record()
    record = ModelRecord.from_dict(data)
    assert json.dumps(record.to_dict()) == json.dumps(data)
    assert record.loss == "cached_mnrl"
    assert record.matryoshka_dims == (384, 256, 128, 64)
    assert not ModelRecord.exists(tmp_path)
    path = record.write(tmp_path)
    assert path == tmp_path / MODEL_RECORD and ModelRecord.exists(tmp_path)
    assert ModelRecord.read(tmp_path) == record


def test_an_old_model_record_with_unknown_keys_loads_and_keeps_them(tmp_path: Path) -> None:
    old = {"base_model": "minilm", "matryoshka_dims": [384, 64], "history": [[1, 0.5, None]], "custom": "kept"}
    (tmp_path / MODEL_RECORD).write_text(json.dumps(old))
    record = ModelRecord.read(tmp_path)
    assert record.base_model == "minilm" and record.steps is None and record.loss is None
    assert record.extra == {"history": [[1, 0.5, None]], "custom": "kept"}
    written = record.write(tmp_path / "again")
    again = json.loads(written.read_text())
    assert again["history"] == [[1, 0.5, None]] and again["custom"] == "kept" and again["base_model"] == "minilm"


def test_the_gate_changes_to_a_model_record_keep_the_key_order_of_v0_1() -> None:
    trained = ModelRecord.from_dict(training_record())
    averaged = trained.averaged_with("minilm", 0.5).to_dict()
    assert list(averaged) == [*training_record(), "weight_average"]
    assert averaged["weight_average"] == {"alpha": 0.5, "base": "minilm"}
    kept = trained.kept_base(note="the quality gate kept the base model's weights")
    expected = training_record()
    expected.update({"prompts": {}, "kept_base": True, "note": "the quality gate kept the base model's weights"})
    assert json.dumps(kept.to_dict()) == json.dumps(expected)
    assert ModelRecord.from_dict(expected) == kept


def test_a_missing_or_broken_model_record_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="fieldtune.json: no model record here"):
        ModelRecord.read(tmp_path)
    (tmp_path / MODEL_RECORD).write_text("[1, 2]")
    with pytest.raises(InputError, match="fieldtune.json: expected a JSON object"):
        ModelRecord.read(tmp_path)


def test_gate_record_round_trips_both_shapes(tmp_path: Path) -> None:
    ran = {"scores": {"trained": 0.5, "averaged": 0.52, "base": 0.49}, "chosen": "averaged",
           "config": {"average_alpha": 0.5, "margin": 0.0}, "directory": "/w/training/averaged",
           "dev_queries_file": "/w/derived-dev", "rotation": {"texts": 10}}
    not_run = {"chosen": "trained", "scores": {}, "reason": "no dev queries"}
    for data in (ran, not_run):
        record = GateRecord.from_dict(data)
        assert json.dumps(record.to_dict()) == json.dumps(data)
    assert GateRecord.not_run("no dev queries").to_dict() == not_run
    assert "directory" not in GateRecord.from_dict(ran).stats()
    assert GateRecord.read(tmp_path) is None
    GateRecord.from_dict(ran).write(tmp_path)
    assert (tmp_path / GATE_RECORD).is_file()
    assert GateRecord.read(tmp_path) == GateRecord.from_dict(ran)
    with_rotation = GateRecord.not_run("no dev queries").with_rotation({"texts": 3})
    assert list(with_rotation.to_dict()) == ["chosen", "scores", "reason", "rotation"]


def test_a_kept_base_record_drops_the_query_side_route_claims() -> None:
    """The base's weights are not the adapted model: the encoder must not reuse base document vectors for them."""
    record = ModelRecord.from_dict({**training_record(), "query_side": True, "document_fingerprint": "abc", "x": 1})
    kept = record.kept_base(note="kept")
    assert "query_side" not in kept.extra and "document_fingerprint" not in kept.extra
    assert kept.extra["x"] == 1 and kept.base_weights_kept


def test_a_gate_record_keeps_no_path_of_the_work_directory(tmp_path: Path) -> None:
    inside, outside = tmp_path / "candidates" / "trained", "/elsewhere/dev"
    record = GateRecord(chosen="trained", scores={"trained": 0.5, "base": 0.4}, directory=str(inside),
                        dev_queries_file=outside).relative_to(tmp_path)
    assert record.directory == "candidates/trained" and record.dev_queries_file == outside
