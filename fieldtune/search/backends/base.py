"""The dense-retrieval seam: what an index backend does, and the registry of backends.

A generation of an index stores its chunk vectors in immutable segments
(:mod:`fieldtune.search.store`) with a tombstone mask; a *backend* answers
dense queries over those vectors. :class:`StoredVectors` is what a backend is
given: the segments' row space, the deleted rows and the stored dimension.

Each backend is one module with one class that follows :class:`VectorBackend`
and registers itself in :data:`INDEX_BACKENDS`; the package
``fieldtune.search.backends`` imports every module, so the table is complete,
and decides which backend a generation uses (:func:`~fieldtune.search.backends.choose`).
The index code (``state.py``, ``builder.py``, ``retrieval.py``, ``index.py``)
talks to backends only through this Protocol.

Adding a backend
----------------
``backends/pgvector.py`` is the worked example: ``build`` and ``updated``
only note what the next generation adds and deletes, ``save`` writes it (one
transaction, rows tagged with the generations that see them, so readers of the
previous generation keep working) and returns what the manifest records in
``ann.file`` (its DSN and options go in ``ann.config``), and ``search`` runs
``ORDER BY embedding <=> query LIMIT count`` (``exact = False``: the index
rescores against its stored vectors). Register the class and add its import
line to ``backends/__init__.py``; ``fieldtune index --store pgvector`` sets
``DenseSettings(backend="pgvector")`` in the new index's manifest: a named
backend is used for every generation and reopened by name, whatever the
threshold. A backend that also ranks text implements :class:`TextSearch`.
A store that also keeps the chunk records in the database is a wider seam
than this one (segments would move too); this Protocol keeps the vectors'
side separate, so that step only replaces where :class:`StoredVectors` come from.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fieldtune.registry import Registry
from fieldtune.search.filters import RowFilter
from fieldtune.search.fusion import Hits
from fieldtune.search.manifest import DenseSettings
from fieldtune.search.store import VectorStore

#: Folder of an index directory that holds the backends' files (one entry per generation that
#: changed them), collected with the segments and generations no manifest needs.
BACKEND_DIR = "ann"


@dataclass(frozen=True)
class StoredVectors:
    """The vectors of one generation: all segments' rows, which are deleted, and their width."""

    store: VectorStore
    deleted: np.ndarray  # bool per global row
    dimension: int

    @functools.cached_property
    def deleted_rows(self) -> int:
        """Rows deleted but still stored (counted once: a generation is never modified)."""
        return int(self.deleted.sum())

    @property
    def live_rows(self) -> int:
        return int(self.store.rows - self.deleted_rows)

    def live_batches(self, first_row: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(global rows, unit vectors) of live rows at or after ``first_row``, block by block."""
        for offset, segment, start, stop in self.store.blocks():
            keys = np.arange(offset, offset + stop - start)
            keep = ~self.deleted[keys] & (keys >= first_row)
            if keep.any():
                yield keys[keep], segment.dequantized(start, stop)[keep]


@runtime_checkable
class VectorBackend(Protocol):
    """Dense candidates over one generation's :class:`StoredVectors` (see the module docstring).

    A backend object belongs to one generation and is never changed once
    published, because searches of that generation may be running: an update
    is one call, :meth:`updated`, that returns the next generation's backend
    (adding and deleting rows together lets a backend choose between editing
    a copy and keeping its files while filtering the new tombstones).
    """

    #: Registry name.
    name: str
    #: True: ``search`` scores are final cosines at ``dim``; False: candidates the index rescores.
    exact: bool

    @classmethod
    def build(cls, vectors: StoredVectors, settings: DenseSettings) -> VectorBackend:
        """A backend over the live rows of ``vectors`` (not saved yet)."""
        ...

    @classmethod
    def open(cls, root: Path, settings: DenseSettings, vectors: StoredVectors) -> VectorBackend:
        """The saved backend of a generation (``settings.file`` relative to ``root``)."""
        ...

    def updated(
        self, vectors: StoredVectors, *, first_new_row: int, removed: np.ndarray
    ) -> VectorBackend:
        """The next generation's backend: rows from ``first_new_row`` on added, ``removed`` gone."""
        ...

    def search(
        self, queries: np.ndarray, count: int, dim: int, *, where: RowFilter | None = None
    ) -> list[Hits]:
        """Up to ``count`` live rows per unit-norm query, best first; ``dim``: shortlist width.

        ``where`` (metadata filters) restricts the rows *before* ranking: as long as
        ``count`` rows pass, ``count`` rows come back.
        """
        ...

    def save(self, root: Path, name: str) -> str | None:
        """Write what generation ``name`` needs under ``root``; the path to record, or None."""
        ...

    def describe(self) -> dict[str, Any]:
        """Name, rows and settings for ``Index.info()`` (JSON-serialisable)."""
        ...


@runtime_checkable
class TextSearch(Protocol):
    """A backend that also ranks rows by their words (PostgreSQL full-text search): hybrid and
    BM25-mode searches of its generations use it instead of the index's local BM25."""

    def text_search(self, queries: list[str], count: int, *, where: RowFilter | None = None) -> list[Hits]:
        """Up to ``count`` live rows per query that share a word with it, best first."""
        ...


#: Dense backends by name (``exact``, ``usearch``); see the module docstring to add one.
INDEX_BACKENDS: Registry[type[VectorBackend]] = Registry("index backend")
