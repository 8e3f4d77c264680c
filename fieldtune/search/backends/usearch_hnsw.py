"""Approximate dense search with usearch HNSW graph shards (:mod:`fieldtune.search.ann`).

Used above the ANN threshold. The graph proposes candidates in its own
order with no scores (``exact = False``): the index rescores them exactly
against the stored vectors, so users see the same cosines as exact search.

Updates follow the index's generations: a delete keeps the saved graph and
filters the new tombstones at search time; an add edits an in-memory copy
(the memory-mapped original stays readable for running searches) and saves
it under the new generation's name; a format-1 graph (one file of vectors
usearch converted from float) is rebuilt instead of edited.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from fieldtune.encoding import truncate
from fieldtune.search.ann import AnnConfig, AnnIndex
from fieldtune.search.backends.base import BACKEND_DIR, INDEX_BACKENDS, StoredVectors
from fieldtune.search.filters import RowFilter
from fieldtune.search.fusion import Hits
from fieldtune.search.manifest import DenseSettings

logger = logging.getLogger("fieldtune.search")

#: Filtered searches passing at most this many rows score them exactly instead of walking the graph.
EXACT_FILTERED_ROWS = 20_000


class UsearchBackend:
    """A sharded HNSW graph over the live rows, keyed by global row."""

    name = "usearch"
    exact = False

    def __init__(
        self,
        graph: AnnIndex,
        vectors: StoredVectors,
        settings: DenseSettings,
        file: str | None = None,
        started: float | None = None,
    ) -> None:
        self.graph = graph
        self.vectors = vectors
        self.settings = settings
        #: The saved graph's directory relative to the index root; None until saved.
        self.file = file
        self._started = started  # when an unsaved graph began to be built (for the log)

    @classmethod
    def build(cls, vectors: StoredVectors, settings: DenseSettings) -> UsearchBackend:
        started = time.perf_counter()
        graph = AnnIndex.build(
            vectors.dimension,
            vectors.live_batches(),
            AnnConfig.from_dict(settings.config),
            rows=vectors.live_rows,
        )
        return cls(graph, vectors, settings, started=started)

    @classmethod
    def open(cls, root: Path, settings: DenseSettings, vectors: StoredVectors) -> UsearchBackend:
        if not settings.file:
            raise ValueError("the manifest names no HNSW graph for this generation")
        graph = AnnIndex.open(root / settings.file, AnnConfig.from_dict(settings.config))
        return cls(graph, vectors, settings, settings.file)

    def updated(
        self, vectors: StoredVectors, *, first_new_row: int, removed: np.ndarray
    ) -> UsearchBackend:
        if first_new_row >= vectors.store.rows:  # delete only: same graph, new tombstones
            return UsearchBackend(self.graph, vectors, self.settings, self.file)
        if self.graph.scale is None:  # format 1 (float-converted): rebuilt, not edited
            return self.build(vectors, self.settings)
        started = time.perf_counter()
        graph = self.graph.writable_copy()
        graph.remove(removed)
        graph.add_batches(vectors.live_batches(first_new_row))
        return UsearchBackend(graph, vectors, self.settings, started=started)

    def search(
        self, queries: np.ndarray, count: int, dim: int, *, where: RowFilter | None = None
    ) -> list[Hits]:
        """Up to ``count`` live rows per query from the full-dimension graph, in the graph's order.

        ``dim`` does not apply (there is no graph per dimension). Deleted rows
        still in the graph are dropped; while that leaves a query with too few
        rows, the graph is asked again for four times as many. Scores are 0.
        With filters (``where``), up to :data:`EXACT_FILTERED_ROWS` passing rows
        are scored exactly (a graph walk would mostly meet rows that fail);
        above that, the graph is asked for enough rows that ``count`` pass.
        """
        graph = self.graph
        if where is None:
            excluded, passing = self.vectors.deleted, self.vectors.live_rows
        else:
            excluded = ~where.rows
            passing = int(where.rows.sum())
            if passing <= EXACT_FILTERED_ROWS:
                return _exact_subset(self.vectors, np.flatnonzero(where.rows), queries, count, dim)
        wanted = min(count, passing)
        if where is None:
            ask = min(len(graph), count + min(self.vectors.deleted_rows, count))
        else:  # as many as it takes for ``count`` to pass if passing rows are spread evenly
            ask = min(len(graph), 2 * count * len(graph) // max(passing, 1))
        while True:
            found = [keys[~excluded[keys]][:count] for keys in graph.search(queries, ask)]
            if all(len(keys) >= wanted for keys in found) or ask >= len(graph):
                break
            ask = min(len(graph), ask * 4)
        return [Hits(keys, np.zeros(len(keys)), keys) for keys in found]

    def save(self, root: Path, name: str) -> str:
        if self.file is not None:
            return self.file  # unchanged since it was saved: the next generation shares it
        relative = f"{BACKEND_DIR}/{name}.graph"
        self.graph.save(root / relative)
        self.file = relative
        seconds = time.perf_counter() - (self._started or time.perf_counter())
        logger.info("HNSW graph of %d rows written in %.1fs", len(self.graph), seconds)
        return relative

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": len(self.graph),
            "shards": len(self.graph.shards),
            "expansion_search": self.graph.expansion_search,
            "file": self.file,
        }


def _exact_subset(
    vectors: StoredVectors, rows: np.ndarray, queries: np.ndarray, count: int, dim: int
) -> list[Hits]:
    """Top ``count`` of ``rows`` per query by exact cosine at ``dim``."""
    out = []
    for query in truncate(queries, dim):
        scores = vectors.store.row_scores(rows, query, dim)
        best = np.argsort(-scores, kind="stable")[:count]
        out.append(Hits.ranked(rows[best], scores[best]))
    return out


INDEX_BACKENDS.register(UsearchBackend.name, UsearchBackend)
