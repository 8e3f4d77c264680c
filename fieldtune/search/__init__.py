"""Search over a corpus: an on-disk index with dense, BM25 and hybrid retrieval.

``Index.build`` turns a corpus into an index directory, ``Index.open`` opens
one, and ``Index.search`` ranks documents (or chunks) for a query. See
:mod:`fieldtune.search.index` for the modes and the Matryoshka ``dim`` funnel,
:mod:`fieldtune.search.state` for the directory layout and how updates stay
atomic, :mod:`fieldtune.search.manifest` for ``index.json``, and
:mod:`fieldtune.search.backends` for the dense backends (exact, usearch).
"""

from __future__ import annotations

from fieldtune.search.index import Index, SearchResult
from fieldtune.search.options import (
    Fusion,
    IndexExistsError,
    IndexNotFoundError,
    SearchMode,
    SearchOptionError,
    Storage,
    UnknownDocumentError,
)

__all__ = [
    "Fusion",
    "Index",
    "IndexExistsError",
    "IndexNotFoundError",
    "SearchMode",
    "SearchOptionError",
    "SearchResult",
    "Storage",
    "UnknownDocumentError",
]
