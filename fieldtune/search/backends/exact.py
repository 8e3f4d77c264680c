"""Exact dense search: brute force over the stored int8/float16 vectors, memory-mapped.

Used below the ANN threshold (``fieldtune index --ann-threshold``, 20,000
chunks by default), where scanning every row costs less than a graph and
gives the true top rows. It keeps no files of its own: the segments are the
index, and the generation's tombstones are masked at query time. At a
shortlist ``dim`` below the stored dimension only the first ``dim`` values of
each row are read (the Matryoshka funnel, see :mod:`fieldtune.search.index`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fieldtune.encoding import truncate
from fieldtune.search.backends.base import INDEX_BACKENDS, StoredVectors
from fieldtune.search.filters import RowFilter
from fieldtune.search.fusion import Hits
from fieldtune.search.manifest import DenseSettings

#: Queries scored together (bounds the queries x rows float32 temporary).
QUERY_BLOCK = 16


class ExactBackend:
    """Cosines against every live row, exact at the dimension asked for."""

    name = "exact"
    exact = True

    def __init__(self, vectors: StoredVectors) -> None:
        self.vectors = vectors

    @classmethod
    def build(cls, vectors: StoredVectors, settings: DenseSettings) -> ExactBackend:
        return cls(vectors)

    @classmethod
    def open(cls, root: Path, settings: DenseSettings, vectors: StoredVectors) -> ExactBackend:
        return cls(vectors)

    def updated(
        self, vectors: StoredVectors, *, first_new_row: int, removed: np.ndarray
    ) -> ExactBackend:
        return ExactBackend(vectors)  # the new segment and tombstones are all it needs

    def search(
        self, queries: np.ndarray, count: int, dim: int, *, where: RowFilter | None = None
    ) -> list[Hits]:
        """Top ``count`` live rows per query by exact cosine at ``dim`` (numpy over the memory map);
        rows ``where`` excludes score minus infinity, so they never take a place."""
        store = self.vectors.store
        excluded = self.vectors.deleted if where is None else ~where.rows
        queries = truncate(queries, dim)
        count = min(count, store.rows)
        out = []
        for start in range(0, len(queries), QUERY_BLOCK):
            scores = store.scores(queries[start : start + QUERY_BLOCK], dim)
            scores[:, excluded] = -np.inf
            for row in scores:
                best = np.argpartition(-row, count - 1)[:count] if count < len(row) else np.arange(len(row))
                best = best[np.isfinite(row[best])]
                out.append(Hits.ranked(best, row[best]))
        return out

    def save(self, root: Path, name: str) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.vectors.live_rows}


INDEX_BACKENDS.register(ExactBackend.name, ExactBackend)
