"""BM25 over texts with bm25s: English stop words and Snowball stemming."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np


def _import_bm25s() -> Any:
    import bm25s

    # bm25s sets its own logger to DEBUG on import; keep it at the application's level.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def _stemmer() -> Any:
    try:
        import Stemmer
    except ImportError:  # stemming helps BM25 by ~0.02 nDCG but is optional
        return None
    return Stemmer.Stemmer("english")


class BM25Index:
    """A BM25 index of ``texts``; :meth:`search` returns (indices, scores) per query."""

    def __init__(self, texts: list[str], *, k1: float = 1.2, b: float = 0.75, method: str = "lucene") -> None:
        bm25s = _import_bm25s()
        self._stemmer = _stemmer()
        self.size = len(texts)
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False)
        self._retriever = bm25s.BM25(k1=k1, b=b, method=method)
        self._retriever.index(tokens, show_progress=False)

    def search(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        bm25s = _import_bm25s()
        k = min(k, self.size)
        tokens = bm25s.tokenize(queries, stopwords="en", stemmer=self._stemmer, show_progress=False, return_ids=False)
        # Queries made only of stop words would otherwise be an error in bm25s.
        tokens = [t if t else [""] for t in tokens]
        indices, scores = self._retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return np.asarray(indices), np.asarray(scores)
