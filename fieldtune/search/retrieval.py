"""Candidate generation: dense (through the generation's backend, with the Matryoshka funnel) and BM25.

Every function returns one :class:`~fieldtune.search.fusion.Hits` per query
over *global chunk rows*, deleted rows excluded, best first.
"""

from __future__ import annotations

import numpy as np

from fieldtune.search.backends.base import TextSearch
from fieldtune.search.filters import RowFilter
from fieldtune.search.fusion import Hits
from fieldtune.search.state import IndexState

#: The funnel shortlists ``max(SHORTLIST_FACTOR * k, MIN_SHORTLIST)`` rows at the truncated dim.
SHORTLIST_FACTOR, MIN_SHORTLIST = 10, 100


def dense_hits(
    state: IndexState, vectors: np.ndarray, count: int, dim: int, k: int, where: RowFilter | None = None
) -> list[Hits]:
    """Best ``count`` live rows per query by full-dimension cosine, shortlisted at ``dim``.

    An exact backend at full dimension returns its scores directly. Otherwise
    the backend's shortlist (exact at ``dim``, or approximate candidates) is
    rescored exactly against the stored full vectors. ``where``: only rows that
    pass the metadata filters are candidates.
    """
    full = state.dimension
    shortlist = max(SHORTLIST_FACTOR * k, MIN_SHORTLIST, count) if dim < full else count
    candidates = state.backend.search(vectors, shortlist, dim, where=where)
    if dim == full and state.backend.exact:
        return candidates
    out = []
    for query, hits in zip(vectors, candidates, strict=True):
        scores = state.store.row_scores(hits.keys, query, full)
        out.append(Hits.ranked(hits.keys, scores).top(count))
    return out


def bm25_hits(state: IndexState, queries: list[str], count: int, where: RowFilter | None = None) -> list[Hits]:
    """Best ``count`` live rows per query by BM25 (rows scoring 0 are left out).

    A backend with its own text search (:class:`~fieldtune.search.backends.base.TextSearch`,
    PostgreSQL's full-text search) answers instead of the local BM25. ``where``: only
    rows that pass the metadata filters are candidates.
    """
    if isinstance(state.backend, TextSearch):
        return state.backend.text_search(queries, count, where=where)
    if state.bm25 is None:
        return [Hits.empty() for _ in queries]
    mask = None if where is None else where.rows[state.bm25_rows]
    indices, scores = state.bm25.search(queries, count, mask=mask)
    out = []
    for row_indices, row_scores in zip(indices, scores, strict=True):
        keep = row_scores > 0
        out.append(Hits.ranked(state.bm25_rows[row_indices[keep]], row_scores[keep]))
    return out
