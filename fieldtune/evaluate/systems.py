"""Retrieval systems under evaluation: dense models (every Matryoshka dimension) and BM25.

A system turns an :class:`EvalSet` into one run per dimension. A query's own
id is never returned as a hit: some sets keep their queries inside the corpus
(quora, arguana), and the query would find itself. The exception is a set
whose qrels judge the document with the query's id relevant to that query
(pubmedqa numbers each question after its abstract): there the shared id is a
naming convention, not the query itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fieldtune.bm25 import BM25Index
from fieldtune.encoding import Encoder, Precision, document_text, truncate
from fieldtune.errors import FieldtuneError
from fieldtune.types import EvalSet, Run

logger = logging.getLogger("fieldtune.evaluate")

DEFAULT_DEPTH = 1000
FULL = "full"


def default_dims(dimension: int, floor: int = 64) -> list[int]:
    """The model's dimension, then every power of two below it down to ``floor``."""
    dims = [dimension]
    power = 1 << (dimension - 1).bit_length() - 1
    while power >= floor:
        if power < dimension:
            dims.append(power)
        power //= 2
    return dims


def self_hits(data: EvalSet, query_ids: list[str]) -> set[str]:
    """Query ids that also name a corpus document which is *not* judged relevant to that query."""
    return {q for q in query_ids if q in data.corpus and data.qrels.get(q, {}).get(q, 0) <= 0}


def top_k_run(scores: np.ndarray, query_ids: list[str], doc_ids: list[str], k: int,
              exclude_own: set[str] | None = None) -> Run:
    """Keep the ``k`` best documents per query row of ``scores``, dropping the query's own id where listed."""
    doc_index = {doc: i for i, doc in enumerate(doc_ids)}
    run: Run = {}
    k = min(k + 1, scores.shape[1])  # one spare in case the query itself is in the corpus
    exclude_own = set(query_ids) if exclude_own is None else exclude_own
    for row, qid in enumerate(query_ids):
        values = scores[row]
        own = doc_index.get(qid) if qid in exclude_own else None
        if own is not None:
            values = values.copy()
            values[own] = -np.inf
        best = np.argpartition(-values, k - 1)[:k] if k < len(values) else np.arange(len(values))
        run[qid] = {doc_ids[i]: float(values[i]) for i in best if np.isfinite(values[i])}
    return run


class System(Protocol):
    name: str
    kind: str

    def runs(self, data: EvalSet, query_ids: list[str]) -> dict[str, Run]: ...


@dataclass
class DenseSystem:
    """A sentence-transformers model, evaluated at each requested dimension."""

    name: str
    model_spec: str
    dims: list[int] | None = None
    precision: Precision = Precision.AUTO
    use_cache: bool = True
    depth: int = DEFAULT_DEPTH
    #: a baseline drops requested dimensions it cannot represent; the model under test may not.
    clip_dims: bool = False
    kind: str = "dense"
    dimension: int = field(init=False, default=0)
    #: what ``precision`` became once the encoder settled it (auto: bf16, int8 or fp32)
    precision_used: str = field(init=False, default="")

    def runs(self, data: EvalSet, query_ids: list[str]) -> dict[str, Run]:
        encoder = Encoder(self.model_spec, precision=self.precision, use_cache=self.use_cache)
        encoder.prepare(len(data.corpus))  # auto settles for a corpus of this size (int8 where it pays)
        self.dimension = encoder.dimension
        self.precision_used = encoder.precision.value
        dims = self.dims or default_dims(self.dimension)
        if self.clip_dims:
            dims = [d for d in dims if d <= self.dimension] or [self.dimension]
        too_big = [d for d in dims if d > self.dimension or d < 1]
        if too_big:  # checked as soon as the model is loaded, before anything is encoded
            shown = ", ".join(map(str, too_big))
            example = ",".join(map(str, default_dims(self.dimension)))
            raise FieldtuneError(f"dimensions {shown} are outside 1..{self.dimension}, the dimensions of {self.name}; "
                                 f"ask for dimensions from 1 to {self.dimension} (--dims), e.g. {example}")
        doc_ids = list(data.corpus)
        doc_texts = [document_text(data.corpus[d].title, data.corpus[d].text) for d in doc_ids]
        logger.info("%s: encoding %d documents and %d queries", self.name, len(doc_ids), len(query_ids))
        docs = encoder.encode(doc_texts, kind="document")
        queries = encoder.encode([data.queries[q] for q in query_ids], kind="query")
        runs = {}
        for dim in dims:
            scores = truncate(queries, dim) @ truncate(docs, dim).T
            runs[str(dim)] = top_k_run(scores, query_ids, doc_ids, self.depth, self_hits(data, query_ids))
        return runs


@dataclass
class BM25System:
    """Lexical baseline (bm25s, Lucene scoring, stemming, English stop words)."""

    name: str = "bm25"
    depth: int = DEFAULT_DEPTH
    kind: str = "bm25"

    def runs(self, data: EvalSet, query_ids: list[str]) -> dict[str, Run]:
        doc_ids = list(data.corpus)
        index = BM25Index([document_text(data.corpus[d].title, data.corpus[d].text) for d in doc_ids])
        indices, scores = index.search([data.queries[q] for q in query_ids], k=self.depth + 1)
        run: Run = {}
        excluded = self_hits(data, query_ids)
        for row, qid in enumerate(query_ids):
            hits = {}
            for i, score in zip(indices[row], scores[row], strict=True):
                doc = doc_ids[int(i)]
                if not (doc == qid and qid in excluded) and score > 0 and len(hits) < self.depth:
                    hits[doc] = float(score)
            run[qid] = hits
        return {FULL: run}
