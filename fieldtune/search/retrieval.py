"""Candidate generation: dense (through the generation's backend, with the Matryoshka funnel) and BM25.

Every function returns one :class:`~fieldtune.search.fusion.Hits` per query
over *global chunk rows*, deleted rows excluded, best first.
"""

from __future__ import annotations

import numpy as np

from fieldtune.search.fusion import Hits
from fieldtune.search.state import IndexState

#: The funnel shortlists ``max(SHORTLIST_FACTOR * k, MIN_SHORTLIST)`` rows at the truncated dim.
SHORTLIST_FACTOR, MIN_SHORTLIST = 10, 100


def dense_hits(state: IndexState, vectors: np.ndarray, count: int, dim: int, k: int) -> list[Hits]:
    """Best ``count`` live rows per query by full-dimension cosine, shortlisted at ``dim``.

    An exact backend at full dimension returns its scores directly. Otherwise
    the backend's shortlist (exact at ``dim``, or approximate candidates) is
    rescored exactly against the stored full vectors.
    """
    full = state.dimension
    shortlist = max(SHORTLIST_FACTOR * k, MIN_SHORTLIST, count) if dim < full else count
    candidates = state.backend.search(vectors, shortlist, dim)
    if dim == full and state.backend.exact:
        return candidates
    out = []
    for query, hits in zip(vectors, candidates, strict=True):
        scores = state.store.row_scores(hits.keys, query, full)
        out.append(Hits.ranked(hits.keys, scores).top(count))
    return out


def bm25_hits(state: IndexState, queries: list[str], count: int) -> list[Hits]:
    """Best ``count`` live rows per query by BM25 (rows scoring 0 are left out)."""
    if state.bm25 is None:
        return [Hits.empty() for _ in queries]
    indices, scores = state.bm25.search(queries, count)
    out = []
    for row_indices, row_scores in zip(indices, scores, strict=True):
        keep = row_scores > 0
        out.append(Hits.ranked(state.bm25_rows[row_indices[keep]], row_scores[keep]))
    return out
