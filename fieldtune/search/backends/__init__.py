"""Dense index backends (exact, usearch, pgvector) and the one place that picks a generation's backend.

See :mod:`fieldtune.search.backends.base` for the Protocol and how to add a
backend. The choice: the backend the manifest's ``ann.backend`` names if
the user picked one; otherwise exact search while the live chunks are at
most ``ann.threshold`` and a usearch graph above it. An opened generation
uses the backend named, else the one whose files its manifest records.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fieldtune.search.backends import exact, pgvector, usearch_hnsw
from fieldtune.search.backends.base import (
    BACKEND_DIR,
    INDEX_BACKENDS,
    StoredVectors,
    TextSearch,
    VectorBackend,
)
from fieldtune.search.manifest import DenseSettings

__all__ = [
    "BACKEND_DIR",
    "INDEX_BACKENDS",
    "StoredVectors",
    "TextSearch",
    "VectorBackend",
    "choose",
    "next_backend",
    "open_backend",
    "stored_backend",
]

EXACT, USEARCH, PGVECTOR = exact.ExactBackend.name, usearch_hnsw.UsearchBackend.name, pgvector.NAME


def choose(settings: DenseSettings, live_rows: int) -> str:
    """The backend a new generation of ``live_rows`` live chunks gets: the one the manifest
    names, else exact search up to the ANN threshold and a usearch graph above it."""
    if settings.backend is not None:
        return settings.backend
    return USEARCH if live_rows > settings.threshold else EXACT


def stored_backend(settings: DenseSettings) -> str:
    """The backend a saved generation uses: the one named, else usearch if it has a graph file."""
    if settings.backend is not None:
        return settings.backend
    return USEARCH if settings.file else EXACT


def open_backend(root: Path, settings: DenseSettings, vectors: StoredVectors) -> VectorBackend:
    """The backend of a saved generation."""
    return INDEX_BACKENDS[stored_backend(settings)].open(root, settings, vectors)


def next_backend(
    settings: DenseSettings,
    vectors: StoredVectors,
    previous: VectorBackend | None = None,
    *,
    first_new_row: int = 0,
    removed: np.ndarray | None = None,
) -> VectorBackend:
    """The backend of a new generation: the previous one updated if it is still the right kind,
    else a new one built from the live rows (not saved yet: see ``VectorBackend.save``)."""
    name = choose(settings, vectors.live_rows)
    if previous is not None and previous.name == name:
        gone = np.zeros(0, dtype=np.int64) if removed is None else removed
        return previous.updated(vectors, first_new_row=first_new_row, removed=gone)
    return INDEX_BACKENDS[name].build(vectors, settings)
