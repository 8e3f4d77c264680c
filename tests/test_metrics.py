"""Metrics from ir-measures checked against tables computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fieldtune.evaluate.metrics import DEFAULT_METRICS, mean_scores, parse_metric, per_query_scores

# q1: relevant d1 (grade 2) and d3 (grade 1); ranking d2, d1, d3, d4
# q2: relevant d9 (grade 1) not retrieved in the top 3 but at rank 12
QRELS = {"q1": {"d1": 2, "d3": 1, "d5": 0}, "q2": {"d9": 1}}
RUN = {
    "q1": {"d2": 0.9, "d1": 0.8, "d3": 0.7, "d4": 0.1},
    "q2": {f"x{i}": 1.0 - i / 100 for i in range(11)} | {"d9": 0.5},
}


def _dcg(gains: list[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def test_hand_computed_table() -> None:
    scores = per_query_scores(QRELS, RUN, ["q1", "q2"], DEFAULT_METRICS)
    # nDCG@10 with graded gains (trec_eval uses the grade as gain)
    ndcg_q1 = _dcg([0, 2, 1]) / _dcg([2, 1])
    assert scores["ndcg@10"] == pytest.approx([ndcg_q1, 0.0])
    assert scores["mrr@10"] == pytest.approx([1 / 2, 0.0])
    assert scores["recall@10"] == pytest.approx([1.0, 0.0])
    assert scores["recall@100"] == pytest.approx([1.0, 1.0])
    assert scores["hit@1"] == pytest.approx([0.0, 0.0])
    assert scores["hit@3"] == pytest.approx([1.0, 0.0])
    assert scores["hit@5"] == pytest.approx([1.0, 0.0])
    # AP q1: relevant at ranks 2 and 3 -> (1/2 + 2/3) / 2 ; q2: at rank 12 -> 1/12
    assert scores["map"] == pytest.approx([(1 / 2 + 2 / 3) / 2, 1 / 12])
    means = mean_scores(scores)
    assert means["mrr@10"] == pytest.approx(0.25)


def test_query_missing_from_run_scores_zero() -> None:
    scores = per_query_scores(QRELS, {"q1": RUN["q1"]}, ["q1", "q2"], DEFAULT_METRICS)
    assert scores["recall@100"][1] == 0.0 and len(scores["ndcg@10"]) == 2


def test_parse_metric() -> None:
    assert parse_metric("nDCG@10").key == "ndcg@10"
    assert parse_metric("MAP").cutoff is None
    with pytest.raises(ValueError, match="known metrics: ndcg, mrr"):
        parse_metric("bleu@4")
    with pytest.raises(ValueError, match="positive integer"):
        parse_metric("ndcg@ten")


def test_per_query_alignment_is_by_id() -> None:
    scores = per_query_scores(QRELS, RUN, ["q2", "q1"], DEFAULT_METRICS)
    assert isinstance(scores["ndcg@10"], np.ndarray)
    assert scores["recall@10"].tolist() == [0.0, 1.0]
