"""Per-query scores of an evaluation: what the report's scatter and its wins-and-losses lists are drawn from.

A mean and its CI say whether a model gained; only the per-query numbers
show *where*: which queries it lost, whether the gain is a few large jumps
or many small steps. :func:`fieldtune.evaluate.harness.run_evaluation`
keeps the primary metric (nDCG@10) of every judged query for every system at
every dimension, with the query texts, in one :class:`PerQueryScores`;
:class:`~fieldtune.evaluate.result.EvaluationResult` writes it under the
``per_query`` key of ``eval --json`` (an older file without it still loads,
and its report simply has no scatter).

Scores are rounded to 4 decimals, which is the precision the tables print,
so 1,000 queries x 13 (system, dimension) pairs stay near 100 kB of JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Decimals kept per score in the JSON form.
DECIMALS = 4


@dataclass(frozen=True)
class QueryGain:
    """One query's score under the model and under a baseline, and the difference."""

    query_id: str
    text: str
    model: float
    baseline: float

    @property
    def gain(self) -> float:
        return self.model - self.baseline


@dataclass(frozen=True)
class PerQueryScores:
    """``metric`` per judged query (aligned with ``query_ids``) for each system and dimension label."""

    metric: str
    query_ids: tuple[str, ...]
    texts: tuple[str, ...]
    #: system name -> dimension label -> one score per query
    scores: Mapping[str, Mapping[str, tuple[float, ...]]]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.query_ids):
            raise ValueError(f"{len(self.query_ids)} query ids but {len(self.texts)} texts")
        for system, by_dim in self.scores.items():
            for dim, values in by_dim.items():
                if len(values) != len(self.query_ids):
                    raise ValueError(f"{system} at {dim}: {len(values)} scores for {len(self.query_ids)} queries")

    @classmethod
    def from_arrays(cls, metric: str, query_ids: Sequence[str], texts: Sequence[str],
                    scores: Mapping[str, Mapping[str, np.ndarray]]) -> PerQueryScores:
        """Round the harness's arrays to :data:`DECIMALS` and keep them as plain tuples."""
        rounded = {system: {dim: tuple(round(float(v), DECIMALS) for v in values) for dim, values in by_dim.items()}
                   for system, by_dim in scores.items()}
        return cls(metric=metric, query_ids=tuple(query_ids), texts=tuple(texts), scores=rounded)

    def values(self, system: str, dim: str) -> np.ndarray:
        """The scores of ``system`` at dimension label ``dim`` as an array (LookupError names what exists)."""
        if system not in self.scores:
            raise LookupError(f"no per-query scores for {system!r} (have: {', '.join(self.scores)})")
        if dim not in self.scores[system]:
            raise LookupError(f"no per-query scores for {system!r} at {dim!r} (have: {', '.join(self.scores[system])})")
        return np.asarray(self.scores[system][dim], dtype=np.float64)

    def gains(self, model: str, model_dim: str, baseline: str, baseline_dim: str) -> list[QueryGain]:
        """Every query's model and baseline score, in query order."""
        mine, theirs = self.values(model, model_dim), self.values(baseline, baseline_dim)
        return [QueryGain(qid, text, float(a), float(b))
                for qid, text, a, b in zip(self.query_ids, self.texts, mine, theirs, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "query_ids": list(self.query_ids), "texts": list(self.texts),
                "scores": {system: {dim: list(values) for dim, values in by_dim.items()}
                           for system, by_dim in self.scores.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerQueryScores:
        return cls(metric=str(data["metric"]), query_ids=tuple(str(q) for q in data["query_ids"]),
                   texts=tuple(str(t) for t in data["texts"]),
                   scores={str(system): {str(dim): tuple(float(v) for v in values) for dim, values in by_dim.items()}
                           for system, by_dim in data["scores"].items()})


def biggest_changes(gains: Sequence[QueryGain], n: int) -> tuple[list[QueryGain], list[QueryGain]]:
    """The ``n`` largest wins and the ``n`` largest losses (ties broken by query order); zero gains are neither."""
    wins = sorted((g for g in gains if g.gain > 0), key=lambda g: -g.gain)  # sorted() is stable: query order
    losses = sorted((g for g in gains if g.gain < 0), key=lambda g: g.gain)
    return wins[:n], losses[:n]
