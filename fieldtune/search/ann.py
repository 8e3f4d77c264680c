"""Approximate nearest neighbours: usearch HNSW graphs over the chunk embeddings.

A graph is a directory of one or more *shards*, each a usearch HNSW index
over a disjoint part of the rows, keyed by global row id. Above
:data:`SHARD_ROWS` rows per core the rows are split over one shard per core
and a single query searches the shards in parallel, so both cores of a small
machine work on it; on 1M rows x 384-d that halves single-query latency at
equal recall (``benchmarks/results/search.md``).

The shards keep int8 codes of the vectors projected onto their leading
principal directions (those holding ``graph_energy``, 98% by default, of the
first rows' energy: ~240 of 384 dimensions for MiniLM-like embeddings), under
one global scale (``scale``: the 99.99th percentile of ``|component|``
mapped to 127), and search by inner product. usearch's own float-to-int8
conversion maps 1.0 to 127, which leaves unit vectors of 384 components
about 13 levels; with the global scale they use the whole range. Both made
the graph find the same neighbours with a narrower beam and fewer bytes read
per distance (on 200k rows: recall@10 0.941 -> 0.948 at beam 384, p50 2.5 ->
2.2 ms).

The graph only proposes candidates: the index's ``usearch`` backend
(:mod:`fieldtune.search.backends.usearch_hnsw`) filters out deleted rows
(asking for more candidates while too few live ones come back) and the index
rescores them exactly against the stored vectors, so the scores a user sees
are the same cosines exact search computes, and only the candidate set is
approximate. An ``add`` writes a new graph directory with the deleted keys
removed and the new rows inserted (into the smallest shard), so a saved
graph is never modified and readers can memory-map it.

The search beam (``expansion_search``) is chosen from the rows per shard
unless set; :func:`auto_expansion` interpolates between measured points.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fieldtune.rotation import principal_rotation

logger = logging.getLogger("fieldtune.search")

ADD_BATCH = 65_536
#: A graph gets one shard per core once it has at least this many rows per core.
SHARD_ROWS = 250_000
#: The shards' metadata in a graph directory (``ann/<generation>.graph/``). Not the concept
#: graph's ``graph.json`` of a build directory: the name stays so existing indexes open.
HNSW_META = "graph.json"
#: Version of a graph directory (1 was a single file of float-converted vectors).
HNSW_FORMAT = 2
#: Quantile of |component| that maps to int8 127 (rarer larger values are clipped).
SCALE_QUANTILE = 0.9999
#: Rows of the first batch that fit the projection and the scale.
FIT_ROWS = 20_000
PROJECTION = "projection.npy"


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
    """HNSW settings: graph degree, beam widths while adding and searching, shards."""

    connectivity: int = 48
    expansion_add: int = 200
    #: None: :func:`auto_expansion` of the rows per shard.
    expansion_search: int | None = None
    dtype: str = "i8"
    #: None: one shard per core from ``SHARD_ROWS`` rows per core on, else one.
    shards: int | None = None
    #: Share of the vectors' energy the graph's principal projection keeps (1.0: no projection).
    graph_energy: float = 0.98

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> AnnConfig:
        fields = cls.__dataclass_fields__
        return cls(**{key: value for key, value in (data or {}).items() if key in fields})


def auto_expansion(rows: int) -> int:
    """The search beam for a shard of ``rows``: 256 up to 100k rows, 300 at 500k, 2048 at most.

    Measured on embedding-like synthetic data with 200 candidates rescored
    (``benchmarks/results/search.md``): recall@10 ~0.96 at 100k rows (one
    shard, beam 256-300) and 0.951 at 1M rows in two shards of 500k (M 48,
    expansion_add 200, beam 300); interpolated on a log scale.
    """
    if rows <= 100_000:
        return 256
    return int(min(2048, round(256 * (300 / 256) ** (math.log(rows / 100_000) / math.log(5)))))


def default_shards(rows: int) -> int:
    cores = os.cpu_count() or 1
    return max(1, min(cores, rows // SHARD_ROWS))


def _threads() -> int:
    return os.cpu_count() or 1


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _shard_pool() -> ThreadPoolExecutor:
    """Threads that search the other shards of one query (usearch releases the GIL)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, _threads()), thread_name_prefix="fieldtune-ann")
        return _pool


class AnnIndex:
    """HNSW shards over unit-norm vectors, keyed by global row id."""

    def __init__(
        self,
        shards: list[Any],
        config: AnnConfig,
        scale: float | None,
        path: Path | None = None,
        projection: np.ndarray | None = None,
    ) -> None:
        self.shards = shards
        self.config = config
        #: int8 step of the graph's codes; None: float vectors (a graph of format 1).
        self.scale = scale
        self.path = path
        #: (dimension, graph dimension) leading principal directions; None: full vectors.
        self.projection = projection
        #: Search the shards of a single query in parallel (False: one after another).
        self.parallel = True
        #: (vector dimension, shard count) of a new graph until its first rows make the shards.
        self._layout: tuple[int, int] | None = None

    @classmethod
    def new(cls, dimension: int, config: AnnConfig, shards: int = 1) -> AnnIndex:
        """An empty graph; its shards are made when the first rows fix scale and projection."""
        require_usearch()
        ann = cls([], config, None)
        ann._layout = (dimension, shards)
        return ann

    @classmethod
    def build(
        cls,
        dimension: int,
        batches: Iterable[tuple[np.ndarray, np.ndarray]],
        config: AnnConfig,
        rows: int,
    ) -> AnnIndex:
        """A new graph from ``(keys, unit-norm vectors)`` batches of ``rows`` rows in all."""
        count = config.shards or default_shards(rows)
        ann = cls.new(dimension, config, count)
        ann.add_batches(batches, per_shard=math.ceil(rows / count))
        ann.expansion_search = config.expansion_search or auto_expansion(ann.rows_per_shard)
        return ann

    @property
    def rows_per_shard(self) -> int:
        return max((len(shard) for shard in self.shards), default=0)

    @property
    def expansion_search(self) -> int:
        if not self.shards:
            return self.config.expansion_search or auto_expansion(0)
        return int(self.shards[0].expansion_search)

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        for shard in self.shards:
            shard.expansion_search = int(value)

    @property
    def legacy(self) -> bool:
        """A format-1 graph: one file of vectors usearch converted from float itself."""
        return self.scale is None and self.path is not None

    def fit(self, vectors: np.ndarray) -> None:
        """Fix projection and int8 step from the first rows added, and make the shards.

        The projection keeps the leading principal directions holding
        ``graph_energy`` of the rows' energy: fewer bytes per distance, and the
        exact rescoring restores what the dropped directions add.
        """
        if self._layout is None or self.scale is not None or not len(vectors):
            return  # an opened graph (or one already fitted) keeps its projection and scale
        dimension, count = self._layout
        sample = np.asarray(vectors[:FIT_ROWS], dtype=np.float32)
        if self.config.graph_energy < 1.0 and len(sample) >= 10 * dimension:
            rotation = principal_rotation(sample)
            energy = np.cumsum(((sample @ rotation) ** 2).mean(axis=0))
            keep = int(np.searchsorted(energy / energy[-1], self.config.graph_energy) + 1)
            keep = min(dimension, -(-keep // 16) * 16)  # whole SIMD blocks
            if keep < dimension:
                self.projection = np.ascontiguousarray(rotation[:, :keep])
        projected = self._project(sample)
        peak = float(np.quantile(np.abs(projected), SCALE_QUANTILE))
        self.scale = (peak if peak > 0 else 1.0) / 127.0
        usearch = require_usearch()
        self.shards = [
            usearch.Index(
                ndim=projected.shape[1],
                metric="ip",
                dtype=self.config.dtype,
                connectivity=self.config.connectivity,
                expansion_add=self.config.expansion_add,
                expansion_search=self.config.expansion_search or auto_expansion(0),
            )
            for _ in range(count)
        ]

    def _project(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        return vectors if self.projection is None else vectors @ self.projection

    def codes(self, vectors: np.ndarray) -> np.ndarray:
        """The graph's form of unit vectors: int8 under the global scale."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.legacy:
            return np.ascontiguousarray(vectors)
        if self.scale is None:
            raise ValueError("the graph has no rows yet, so no int8 scale")
        return np.clip(np.rint(self._project(vectors) / self.scale), -127, 127).astype(np.int8)

    def add_batches(
        self, batches: Iterable[tuple[np.ndarray, np.ndarray]], per_shard: int | None = None
    ) -> None:
        """Insert ``(keys, unit vectors)`` with every core: filling shards of ``per_shard``
        rows in order, or (``None``) into the smallest shard; logs progress."""
        started, added = time.perf_counter(), 0
        for keys, vectors in batches:
            for start in range(0, len(keys), ADD_BATCH):
                part_keys = np.asarray(keys[start : start + ADD_BATCH], dtype=np.uint64)
                self.fit(vectors[start : start + ADD_BATCH])
                part = self.codes(vectors[start : start + ADD_BATCH])
                while len(part_keys):
                    shard, room = self._target(per_shard)
                    take = min(room, len(part_keys))
                    shard.add(part_keys[:take], part[:take], threads=_threads())
                    part_keys, part = part_keys[take:], part[take:]
                    added += take
                rate = added / max(time.perf_counter() - started, 1e-9)
                logger.info("HNSW graph: %d rows inserted (%.0f rows/s)", added, rate)

    def _target(self, per_shard: int | None) -> tuple[Any, int]:
        if per_shard is None:
            return min(self.shards, key=len), ADD_BATCH
        for shard in self.shards:
            if len(shard) < per_shard:
                return shard, per_shard - len(shard)
        return min(self.shards, key=len), ADD_BATCH

    @classmethod
    def open(cls, path: Path, config: AnnConfig, *, view: bool = True) -> AnnIndex:
        """Open a saved graph; ``view=True`` memory-maps it read-only (shared, nothing copied)."""
        usearch = require_usearch()
        projection = None
        if path.is_dir():
            meta = json.loads((path / HNSW_META).read_text())
            files, scale = [path / name for name in meta["shards"]], float(meta["scale"])
            if meta.get("projection"):
                projection = np.load(path / meta["projection"])
        else:  # format 1: one file of float-converted vectors
            files, scale = [path], None
        shards = []
        for file in files:
            shard = usearch.Index.restore(str(file), view=view)
            if shard is None:
                raise ValueError(f"{file}: not a usearch index file")
            shards.append(shard)
        ann = cls(shards, config, scale, path, projection)
        ann.expansion_search = config.expansion_search or auto_expansion(ann.rows_per_shard)
        return ann

    def writable_copy(self) -> AnnIndex:
        """An in-memory copy that can be changed (the memory-mapped original stays as it is)."""
        if self.path is None:
            raise ValueError("only a saved graph can be copied")
        return AnnIndex.open(self.path, self.config, view=False)

    def remove(self, keys: np.ndarray) -> None:
        for shard in self.shards:
            present = [int(key) for key in keys if shard.contains(int(key))]
            if present:
                shard.remove(np.asarray(present, dtype=np.uint64))

    def save(self, path: Path) -> None:
        """Write the graph directory ``path`` atomically (temporary directory + rename)."""
        if self.scale is None:
            raise ValueError("a format-1 graph cannot be saved again; rebuild the index")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            names = [f"shard-{i}.usearch" for i in range(len(self.shards))]
            for shard, name in zip(self.shards, names, strict=True):
                shard.save(str(tmp / name))
            meta = {
                "format": HNSW_FORMAT,
                "scale": self.scale,
                "shards": names,
                "rows": [len(shard) for shard in self.shards],
                "graph_dimension": int(self.shards[0].ndim),
                "projection": None if self.projection is None else PROJECTION,
            }
            if self.projection is not None:
                np.save(tmp / PROJECTION, self.projection)
            (tmp / HNSW_META).write_text(json.dumps(meta, indent=1))
            if path.exists():
                shutil.rmtree(path)
            os.rename(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(tmp)
            raise
        self.path = path

    def __len__(self) -> int:
        return sum(len(shard) for shard in self.shards)

    def search(self, queries: np.ndarray, count: int) -> list[np.ndarray]:
        """Up to ``count`` candidate keys per query (unit-norm rows), best first."""
        if len(self) == 0:
            return [np.zeros(0, dtype=np.int64) for _ in queries]
        count = max(1, min(count, len(self)))
        codes = self.codes(queries)
        if len(queries) == 1 and len(self.shards) > 1 and self.parallel:
            # One query: the other shards on pool threads, the first on this one.
            rest = [
                _shard_pool().submit(_search_shard, shard, codes, count, 1)
                for shard in self.shards[1:]
            ]
            parts = [_search_shard(self.shards[0], codes, count, 1)]
            parts += [future.result() for future in rest]
        else:
            threads = 1 if len(queries) == 1 else _threads()
            parts = [_search_shard(shard, codes, count, threads) for shard in self.shards]
        if len(parts) == 1:
            return [keys for keys, _ in parts[0]]
        out = []
        for i in range(len(queries)):
            keys = np.concatenate([part[i][0] for part in parts])
            distances = np.concatenate([part[i][1] for part in parts])
            out.append(keys[np.argsort(distances, kind="stable")[:count]])
        return out


def _search_shard(
    shard: Any, codes: np.ndarray, count: int, threads: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(keys, distances) per query from one shard, best first."""
    count = max(1, min(count, len(shard)))
    if len(shard) == 0:
        return [(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in codes]
    matches = shard.search(codes, count, threads=threads)
    if not hasattr(matches, "counts"):  # one query gives Matches, several BatchMatches
        return [
            (
                np.asarray(matches.keys, dtype=np.int64),
                np.asarray(matches.distances, dtype=np.float32),
            )
        ]
    keys, counts = np.atleast_2d(matches.keys), np.atleast_1d(matches.counts)
    distances = np.atleast_2d(matches.distances)
    return [
        (keys[i, : int(counts[i])].astype(np.int64), distances[i, : int(counts[i])])
        for i in range(len(codes))
    ]
