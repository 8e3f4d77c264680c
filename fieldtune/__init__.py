"""fieldtune: domain-tuned retrieval embeddings from a folder of documents.

Heavy dependencies (torch, sentence-transformers) are imported inside the
functions that need them, so importing this package stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
