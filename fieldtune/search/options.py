"""Options of the search index (string enums whose errors list the members) and its errors.

Every error here derives from :class:`~fieldtune.errors.FieldtuneError`, so the
command line prints it as ``error: ...`` without a traceback, and also from
the built-in exception a Python caller would expect (``ValueError``,
``KeyError``, ``FileNotFoundError``).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import numpy as np

from fieldtune.errors import FieldtuneError

#: Largest ``k`` a search accepts.
MAX_K = 1000


class SearchOptionError(FieldtuneError, ValueError):
    """A search or index option outside its allowed values (the message lists them)."""


class IndexNotFoundError(FieldtuneError, FileNotFoundError):
    """The path given as an index is not a fieldtune index directory."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IndexExistsError(FieldtuneError, FileExistsError):
    """``Index.build`` was pointed at a directory that already holds something."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownDocumentError(FieldtuneError, KeyError):
    """A document id that is not in the index (``KeyError`` with a readable message)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class _Choice(str, Enum):
    """A string option: matching ignores case and spaces; a bad value lists the members."""

    @classmethod
    def _missing_(cls, value: object) -> _Choice:
        if isinstance(value, str):
            for member in cls:
                if member.value == value.strip().lower():
                    return member
        raise SearchOptionError(
            f"{cls.option_name()} must be one of: {cls.choices()} (got {value!r})"
        )

    @classmethod
    def option_name(cls) -> str:
        return cls.__name__.lower()

    @classmethod
    def choices(cls) -> str:
        return ", ".join(member.value for member in cls)

    def __str__(self) -> str:
        return self.value


class SearchMode(_Choice):
    """What ranks the results: the embedding model, BM25, or both fused."""

    DENSE = "dense"
    BM25 = "bm25"
    HYBRID = "hybrid"

    @classmethod
    def option_name(cls) -> str:
        return "mode"


class Fusion(_Choice):
    """How hybrid search combines the dense and BM25 rankings.

    ``rrf``: reciprocal rank fusion, ``sum 1 / (60 + rank)``. ``score``: each
    system's scores min-max normalised over its candidates, then
    ``weight * dense + (1 - weight) * bm25``.
    """

    RRF = "rrf"
    SCORE = "score"


class Storage(_Choice):
    """How chunk embeddings are stored on disk.

    ``int8``: one signed byte per component plus a float32 scale per vector
    (symmetric, ``scale = max|v| / 127``); ``float16``: two bytes per component.
    """

    INT8 = "int8"
    FLOAT16 = "float16"


class Store(_Choice):
    """Where an index's chunk vectors are searched.

    ``local``: in the index directory (exact search, or a usearch graph above the
    ANN threshold); ``pgvector``: in a PostgreSQL table with pgvector
    (``--dsn``; see :mod:`fieldtune.search.backends.pgvector`).
    """

    LOCAL = "local"
    PGVECTOR = "pgvector"


def check_k(k: int) -> int:
    """``k`` as an int in 1..MAX_K, or a :class:`SearchOptionError`."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise SearchOptionError(f"k must be an integer from 1 to {MAX_K} (got {k!r})")
    return k


def check_dim(dim: int | None, allowed: Sequence[int]) -> int:
    """``dim`` as one of the ``allowed`` dimensions (None: the first, the full one), or a
    :class:`SearchOptionError` listing them (for an index's build and for its searches)."""
    if dim is None:
        return int(allowed[0])
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or int(dim) not in allowed:
        choices = ", ".join(str(d) for d in allowed)
        raise SearchOptionError(f"dim must be one of: {choices} (got {dim!r})")
    return int(dim)
