"""Candidate generation: dense (exact or HNSW, with the Matryoshka funnel) and BM25.

Every function returns one :class:`~fieldtune.search.fusion.Hits` per query
over *global chunk rows*, deleted rows excluded, best first.
"""

from __future__ import annotations

import numpy as np

from fieldtune.encoding import truncate
from fieldtune.search.fusion import Hits
from fieldtune.search.state import IndexState

#: The funnel shortlists ``max(SHORTLIST_FACTOR * k, MIN_SHORTLIST)`` rows at the truncated dim.
SHORTLIST_FACTOR, MIN_SHORTLIST = 10, 100
#: Queries scored together by exact search (bounds the queries x rows float32 temporary).
QUERY_BLOCK = 16


def dense_hits(state: IndexState, vectors: np.ndarray, count: int, dim: int, k: int) -> list[Hits]:
    """Best ``count`` live rows per query by full-dimension cosine, shortlisted at ``dim``.

    Exact search at full dimension returns its scores directly. Otherwise a
    shortlist (exact at ``dim`` below the ANN threshold, the full-dimension
    HNSW graph above it) is rescored exactly against the stored full vectors.
    """
    full = state.dimension
    shortlist = max(SHORTLIST_FACTOR * k, MIN_SHORTLIST, count) if dim < full else count
    if state.ann is not None:
        candidates = ann_candidates(state, vectors, shortlist)
    else:
        candidates = exact_candidates(state, vectors, shortlist, dim)
    if dim == full and state.ann is None:
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


def exact_candidates(state: IndexState, vectors: np.ndarray, count: int, dim: int) -> list[Hits]:
    """Top ``count`` live rows per query by exact cosine at ``dim`` (numpy over the memory map)."""
    queries = truncate(vectors, dim)
    count = min(count, state.store.rows)
    out = []
    for start in range(0, len(queries), QUERY_BLOCK):
        scores = state.store.scores(queries[start : start + QUERY_BLOCK], dim)
        scores[:, state.deleted] = -np.inf
        for row in scores:
            if count < len(row):
                best = np.argpartition(-row, count - 1)[:count]
            else:
                best = np.arange(len(row))
            best = best[np.isfinite(row[best])]
            out.append(Hits.ranked(best, row[best]))
    return out


def ann_candidates(state: IndexState, vectors: np.ndarray, count: int) -> list[Hits]:
    """Up to ``count`` live rows per query from the HNSW graph, in the graph's order.

    Deleted rows still in the graph are dropped; while that leaves a query
    with too few rows, the graph is asked again for four times as many.
    Scores are left at 0: callers rescore exactly.
    """
    ann = state.ann
    if ann is None:
        raise ValueError("this generation has no HNSW graph")
    wanted = min(count, state.live_rows)
    ask = min(len(ann), count + min(state.deleted_rows, count))
    while True:
        found = [keys[~state.deleted[keys]][:count] for keys in ann.search(vectors, ask)]
        if all(len(keys) >= wanted for keys in found) or ask >= len(ann):
            break
        ask = min(len(ann), ask * 4)
    return [Hits(keys, np.zeros(len(keys)), keys) for keys in found]
