"""The quality gate's choice and the weight averaging it relies on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fieldtune.gate import GateConfig, average_with_base, choose


def test_choose_prefers_a_trained_candidate_only_when_it_is_not_worse() -> None:
    assert choose({"trained": 0.52, "averaged": 0.51, "base": 0.50}, margin=0.0) == "trained"
    assert choose({"trained": 0.49, "averaged": 0.51, "base": 0.50}, margin=0.0) == "averaged"
    assert choose({"trained": 0.49, "averaged": 0.48, "base": 0.50}, margin=0.0) == "base"
    assert choose({"trained": 0.505, "averaged": 0.50, "base": 0.50}, margin=0.01) == "base"
    assert choose({"trained": 0.51, "averaged": 0.51, "base": 0.50}, margin=0.0) == "trained"  # ties go to trained


def test_gate_config_rejects_alpha_outside_the_open_interval() -> None:
    with pytest.raises(ValueError, match="average_alpha"):
        GateConfig(average_alpha=1.0)


def test_average_with_base_interpolates_every_weight(tmp_path) -> None:
    import torch

    from fieldtune.models import load_model

    tuned = load_model("minilm", device="cpu")
    with torch.no_grad():
        for parameter in tuned.parameters():
            parameter.add_(1.0)
    tuned.save(str(tmp_path / "tuned"))
    (tmp_path / "tuned" / "fieldtune.json").write_text(json.dumps({"base_model": "minilm"}))
    out = average_with_base(tmp_path / "tuned", "minilm", tmp_path / "avg", alpha=0.25)
    base = dict(load_model("minilm", device="cpu").named_parameters())
    averaged = dict(load_model(str(out), device="cpu").named_parameters())
    for name, value in averaged.items():
        np.testing.assert_allclose(value.detach().numpy(), base[name].detach().numpy() + 0.25, atol=1e-5)
    assert json.loads((out / "fieldtune.json").read_text())["weight_average"] == {"alpha": 0.25, "base": "minilm"}


def test_choose_demands_significance_where_asked() -> None:
    scores = {"trained": 0.52, "averaged": 0.51, "base": 0.50}
    assert choose(scores, 0.0) == "trained"
    assert choose(scores, 0.0, {"trained": False, "averaged": True}) == "averaged"
    assert choose(scores, 0.0, {"trained": False, "averaged": False}) == "base"


def test_gain_over_reads_the_full_dimension_comparison() -> None:
    from fieldtune.evaluate.result import EvaluationResult
    from fieldtune.gate import gain_over

    from .test_records import eval_json

    result = EvaluationResult.from_dict(eval_json())
    gain = gain_over(result, "minilm")
    assert gain is not None and gain.delta == pytest.approx(0.05)
    assert gain_over(result, "bm25") is None  # compared at 128 only, not at the model's full dimension


def test_teacher_divergence_is_zero_when_the_model_ranks_like_the_teacher() -> None:
    from fieldtune.gate import teacher_divergence
    from fieldtune.types import ScoredQuery

    vectors = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([0.6, 0.8])}
    query = np.array([0.8, 0.6])
    cosines = [0.8, 0.6, 0.96]
    # teacher / 0.1 == cosine / 0.05  <=>  teacher == 2 * cosine: identical softmaxes.
    same = ScoredQuery(query_id="q", text="q", candidate_ids=("a", "b", "c"),
                       teacher_scores=tuple(2 * c for c in cosines))
    assert teacher_divergence(query, same, vectors, 0.1, 0.05) == pytest.approx(0.0, abs=1e-12)
    flipped = ScoredQuery(query_id="q", text="q", candidate_ids=("a", "b", "c"), teacher_scores=(0.0, 2.0, 0.0))
    p = np.exp([0.0, 20.0, 0.0]) / np.exp([0.0, 20.0, 0.0]).sum()
    q = np.exp(np.array(cosines) / 0.05) / np.exp(np.array(cosines) / 0.05).sum()
    assert teacher_divergence(query, flipped, vectors, 0.1, 0.05) == pytest.approx(float(np.sum(p * np.log(p / q))))
