"""fieldtune: domain-tuned retrieval embeddings from a folder of documents.

Heavy dependencies (torch, sentence-transformers) are imported inside the
functions that need them, so importing this package stays cheap.
``fieldtune.Index`` is imported from :mod:`fieldtune.search` on first access.
"""

from __future__ import annotations

from typing import Any

from fieldtune.version import __version__

__all__ = ["Index", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Index":
        from fieldtune.search import Index

        return Index
    raise AttributeError(f"module 'fieldtune' has no attribute {name!r}")
