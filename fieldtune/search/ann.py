"""Approximate nearest neighbours: a usearch HNSW graph over the chunk embeddings.

The graph is built over the dequantized unit-norm vectors with the inner
product metric (= cosine) and keeps its own int8 copy of them (usearch
``dtype="i8"``), which made building 2.3x and searching 1.5-2x faster than
float16 here at equal recall. Its keys are global row ids. The graph only
proposes candidates: :class:`~fieldtune.search.index.Index` rescores them
exactly against the stored vectors, so the scores a user sees are the same
cosines exact search computes, and only the candidate set is approximate.

Deleted rows are filtered out of the graph's answers (the search asks for
more candidates while too few live ones come back); ``add`` writes a new graph
file with the deleted keys removed and the new rows inserted, so a graph file
is never modified after it is written and readers can memory-map it.

The settings (:class:`AnnConfig`) were tuned with ``benchmarks/search.py``
(``benchmarks/results/search.md``): connectivity 32 and ``expansion_add`` 128
build 100k rows in ~1.5 min and 1M rows in ~20 min on 2 shared cores. The
search beam (``expansion_search``) is chosen from the graph's size unless set:
on embedding-like synthetic data, with 200 candidates rescored, 256 gives
recall@10 ~0.95 at 100k rows (p50 ~2 ms) but only 0.86 at 1M (p50 ~4 ms); 1M
rows need ~1000 for 0.95 (p50 ~11 ms). :func:`auto_expansion` interpolates
between those two measured points on a log scale.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("fieldtune.search")

ADD_BATCH = 65_536


def require_usearch() -> Any:
    """The ``usearch.index`` module, or an ImportError that says how to install it."""
    try:
        import usearch.index
    except ImportError as error:
        raise ImportError(
            "approximate search needs usearch: pip install 'fieldtune[ann]' "
            "(or raise ann_threshold above the number of chunks to use exact search)"
        ) from error
    return usearch.index


@dataclass(frozen=True)
class AnnConfig:
    """HNSW settings: graph degree, and beam widths while adding and searching."""

    connectivity: int = 32
    expansion_add: int = 128
    #: None: :func:`auto_expansion` of the graph's size.
    expansion_search: int | None = None
    dtype: str = "i8"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> AnnConfig:
        fields = cls.__dataclass_fields__
        return cls(**{key: value for key, value in (data or {}).items() if key in fields})


def auto_expansion(rows: int) -> int:
    """The search beam for a graph of ``rows``: 256 up to 100k rows, 1024 at 1M, 2048 at most."""
    if rows <= 100_000:
        return 256
    return int(min(2048, round(256 * 4 ** math.log10(rows / 100_000))))


def _threads() -> int:
    return os.cpu_count() or 1


class AnnIndex:
    """A usearch HNSW index over unit-norm vectors, keyed by global row id."""

    def __init__(self, index: Any, config: AnnConfig, path: Path | None = None) -> None:
        self.index = index
        self.config = config
        self.path = path

    @classmethod
    def new(cls, dimension: int, config: AnnConfig) -> AnnIndex:
        usearch = require_usearch()
        index = usearch.Index(
            ndim=dimension,
            metric="ip",
            dtype=config.dtype,
            connectivity=config.connectivity,
            expansion_add=config.expansion_add,
            expansion_search=config.expansion_search or auto_expansion(0),
        )
        return cls(index, config)

    @classmethod
    def build(
        cls, dimension: int, batches: Iterable[tuple[np.ndarray, np.ndarray]], config: AnnConfig
    ) -> AnnIndex:
        """A new graph from ``(keys, unit-norm vectors)`` batches, added with every core."""
        ann = cls.new(dimension, config)
        ann.add_batches(batches)
        return ann

    def add_batches(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """Insert ``(keys, unit vectors)`` batches with every core, logging progress."""
        started, added = time.perf_counter(), 0
        for keys, vectors in batches:
            for start in range(0, len(keys), ADD_BATCH):
                stop = start + ADD_BATCH
                self.index.add(
                    np.asarray(keys[start:stop], dtype=np.uint64),
                    np.ascontiguousarray(vectors[start:stop], dtype=np.float32),
                    threads=_threads(),
                )
                added += len(keys[start:stop])
                rate = added / max(time.perf_counter() - started, 1e-9)
                logger.info("HNSW graph: %d rows inserted (%.0f rows/s)", added, rate)

    @classmethod
    def open(cls, path: Path, config: AnnConfig, *, view: bool = True) -> AnnIndex:
        """Open a saved graph; ``view=True`` memory-maps it read-only (shared, nothing copied)."""
        usearch = require_usearch()
        index = usearch.Index.restore(str(path), view=view)
        if index is None:
            raise ValueError(f"{path}: not a usearch index file")
        index.expansion_search = config.expansion_search or auto_expansion(len(index))
        return cls(index, config, path)

    def writable_copy(self) -> AnnIndex:
        """An in-memory copy that can be changed (the memory-mapped original stays as it is)."""
        if self.path is None:
            raise ValueError("only a saved graph can be copied")
        return AnnIndex.open(self.path, self.config, view=False)

    def remove(self, keys: np.ndarray) -> None:
        present = [int(key) for key in keys if self.index.contains(int(key))]
        if present:
            self.index.remove(np.asarray(present, dtype=np.uint64))

    def save(self, path: Path) -> None:
        """Write the graph to ``path`` atomically (temporary file + rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            self.index.save(tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self.path = path

    def __len__(self) -> int:
        return len(self.index)

    def search(self, queries: np.ndarray, count: int) -> list[np.ndarray]:
        """Up to ``count`` candidate keys per query (unit-norm rows), best first."""
        count = max(1, min(count, len(self)))
        threads = 1 if len(queries) == 1 else _threads()
        matches = self.index.search(
            np.ascontiguousarray(queries, dtype=np.float32), count, threads=threads
        )
        if not hasattr(matches, "counts"):  # one query gives Matches, several BatchMatches
            return [np.asarray(matches.keys, dtype=np.int64)]
        keys, counts = np.atleast_2d(matches.keys), np.atleast_1d(matches.counts)
        return [keys[i, : int(counts[i])].astype(np.int64) for i in range(len(queries))]
