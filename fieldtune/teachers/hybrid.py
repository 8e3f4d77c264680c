"""The hybrid teacher: search's own hybrid of BM25 and the base model, which beats the base model alone.

For each query the candidates are the union of the top ``k`` chunks by BM25 and
the top ``k`` by the base model's cosine; each list's scores are min-max
normalised over that list, a candidate missing from a list gets that list's
minimum (0 after normalising), and the teacher score is
``w * dense + (1 - w) * bm25`` — exactly search's score fusion
(:func:`fieldtune.search.fusion.weighted_scores`), so the student learns the
ranking that ``fieldtune search --mode hybrid`` gives. Hybrid beats dense on every
set measured (benchmarks/results/search.md), which is what makes it a teacher.
"""

from __future__ import annotations

from collections.abc import Sequence

from fieldtune.search.fusion import DENSE_WEIGHT, weighted_scores
from fieldtune.teachers.base import TEACHERS, TeacherOptions
from fieldtune.teachers.pool import CandidatePool
from fieldtune.types import Query, ScoredQuery


class HybridTeacher:
    """Score fusion of BM25 and base-model dense rankings (see the module docstring)."""

    name = "hybrid"

    def __init__(self, dense_weight: float = DENSE_WEIGHT) -> None:
        self.dense_weight = TeacherOptions(dense_weight=dense_weight).dense_weight

    def score(self, queries: Sequence[Query], corpus: CandidatePool, k: int) -> list[ScoredQuery]:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        texts = [query.text for query in queries]
        dense = corpus.dense_top(corpus.query_vectors(texts), k)
        lexical = corpus.bm25_top(texts, k)
        scored = []
        for query, dense_hits, bm25_hits in zip(queries, dense, lexical, strict=True):
            fused = weighted_scores(dense_hits, bm25_hits, self.dense_weight)
            scored.append(ScoredQuery(
                query_id=query.id,
                text=query.text,
                candidate_ids=tuple(corpus.ids[row] for row in fused.keys.tolist()),
                teacher_scores=tuple(fused.scores.tolist()),
            ))
        return scored


TEACHERS.register(HybridTeacher.name, lambda options: HybridTeacher(options.dense_weight))
