"""The hybrid teacher: search's own hybrid of BM25 and the base model, which beats the base model alone.

For each query the candidates are the union of the top ``k`` chunks by BM25 and
the top ``k`` by the base model's cosine. Every candidate gets both systems'
exact scores (its cosine and its BM25 score, 0 when it shares no word with the
query), each min-max normalised over the candidates, and the teacher score is
``w * dense + (1 - w) * bm25`` (:func:`fieldtune.search.fusion.fused_over_candidates`).
Search's fusion gives a chunk missing from one list that list's minimum
instead, because search does not score what it did not retrieve; the teacher
can, and the exact scores rank better on every public set measured (numbers
in that function's docstring). Hybrid beats dense on every set measured
(benchmarks/results/search.md), which is what makes it a teacher.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fieldtune.search.fusion import DENSE_WEIGHT, Hits, fused_over_candidates
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
        vectors = corpus.query_vectors(texts)
        dense = corpus.dense_top(vectors, k)
        lexical = corpus.bm25_top(texts, k)
        scored = []
        for query, vector, dense_hits, bm25_hits in zip(queries, vectors, dense, lexical, strict=True):
            rows = np.union1d(dense_hits.keys, bm25_hits.keys)
            cosines = corpus.vectors[rows] @ np.asarray(vector, dtype=np.float32)
            fused = Hits.ranked(rows, fused_over_candidates(cosines, corpus.bm25_scores(query.text, rows),
                                                             self.dense_weight))
            scored.append(ScoredQuery(
                query_id=query.id,
                text=query.text,
                candidate_ids=tuple(corpus.ids[row] for row in fused.keys.tolist()),
                teacher_scores=tuple(fused.scores.tolist()),
            ))
        return scored


TEACHERS.register(HybridTeacher.name, lambda options: HybridTeacher(options.dense_weight))
