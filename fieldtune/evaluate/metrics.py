"""Metric names, parsed once, computed per query by ir-measures (pytrec_eval underneath).

Our names are lower-case ``name@k`` strings; each maps to one ir-measures
measure. nDCG uses graded relevance as judged; Recall, Hit and MRR count a
document as relevant when its grade is at least 1. Ties in a run are broken
the way trec_eval does (by document id), which is what pytrec_eval implements.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from fieldtune.types import Qrels, Run


class MetricName(str, Enum):
    NDCG = "ndcg"
    MRR = "mrr"
    RECALL = "recall"
    HIT = "hit"
    MAP = "map"
    PRECISION = "precision"


_IR_MEASURES = {
    MetricName.NDCG: "nDCG",
    MetricName.MRR: "RR",
    MetricName.RECALL: "R",
    MetricName.HIT: "Success",
    MetricName.MAP: "AP",
    MetricName.PRECISION: "P",
}


@dataclass(frozen=True)
class Metric:
    name: MetricName
    cutoff: int | None

    @property
    def key(self) -> str:
        return self.name.value if self.cutoff is None else f"{self.name.value}@{self.cutoff}"

    @property
    def ir_measure(self) -> str:
        base = _IR_MEASURES[self.name]
        return base if self.cutoff is None else f"{base}@{self.cutoff}"


def parse_metric(text: str) -> Metric:
    """Parse ``"ndcg@10"``, ``"MRR@10"``, ``"map"`` ...; the error lists what is known."""
    name, _, cutoff = text.strip().lower().partition("@")
    try:
        metric_name = MetricName(name)
    except ValueError:
        known = ", ".join(m.value for m in MetricName)
        raise ValueError(f"unknown metric {text!r}; known metrics: {known} (with @k where it applies)") from None
    if cutoff and not cutoff.isdigit():
        raise ValueError(f"metric {text!r}: the cutoff after @ must be a positive integer")
    return Metric(metric_name, int(cutoff) if cutoff else None)


DEFAULT_METRICS: tuple[Metric, ...] = tuple(
    parse_metric(m)
    for m in ("ndcg@10", "mrr@10", "recall@10", "recall@100", "hit@1", "hit@3", "hit@5", "map")
)
PRIMARY_METRIC = parse_metric("ndcg@10")


def per_query_scores(
    qrels: Qrels, run: Run, query_ids: list[str], metrics: tuple[Metric, ...] = DEFAULT_METRICS
) -> dict[str, np.ndarray]:
    """For each metric, an array aligned with ``query_ids``; a query missing from the run scores 0."""
    import ir_measures

    by_measure = {ir_measures.parse_measure(m.ir_measure): m.key for m in metrics}
    index = {qid: i for i, qid in enumerate(query_ids)}
    scores = {key: np.zeros(len(query_ids)) for key in by_measure.values()}
    sub_qrels = {qid: qrels[qid] for qid in query_ids}
    sub_run = {qid: run[qid] for qid in query_ids if run.get(qid)}
    for result in ir_measures.iter_calc(list(by_measure), sub_qrels, sub_run):
        scores[by_measure[result.measure]][index[result.query_id]] = result.value
    return scores


def mean_scores(per_query: dict[str, np.ndarray]) -> dict[str, float]:
    return {key: float(values.mean()) if len(values) else 0.0 for key, values in per_query.items()}
