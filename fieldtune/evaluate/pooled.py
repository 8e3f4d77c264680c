"""A dev set cut down to the documents that matter, so scoring a candidate model costs a pool, not a corpus.

The gate scores every candidate (trained, averaged, adapted, ...) against the
base on the dev queries. On the full corpus each candidate re-encodes every
chunk; the CPU issue measured most of a SciFact build going to such encodes.
The pool is, per dev query, the judged documents plus the top ``depth`` of the
base model and of BM25 (the TREC pooling idea): the base ranks exactly as on
the full corpus down to ``depth``, and a candidate can only miss documents
neither the base nor BM25 ranked near the top, which errs against the
candidate, never for it (the gate stays conservative).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fieldtune.bm25 import BM25Index
from fieldtune.encoding import Encoder, Precision, document_text
from fieldtune.evaluate.beir import load_beir, write_beir
from fieldtune.types import EvalSet

logger = logging.getLogger("fieldtune.evaluate.pooled")

#: Corpora up to this many documents are scored whole (the pool would not save enough to matter).
POOL_THRESHOLD = 3000
POOL_DEPTH = 50


def pooled_dev_set(dev_dir: Path, out_dir: Path, base: str, precision: Precision | str = Precision.AUTO, *,
                   depth: int = POOL_DEPTH, threshold: int = POOL_THRESHOLD) -> Path:
    """``dev_dir`` itself when its corpus is small; else the pooled copy written to ``out_dir``."""
    data = load_beir(dev_dir)
    if len(data.corpus) <= threshold:
        return dev_dir
    query_ids = [qid for qid in data.judged_query_ids if data.queries[qid].strip()]
    doc_ids = list(data.corpus)
    texts = [document_text(data.corpus[d].title, data.corpus[d].text) for d in doc_ids]
    queries = [data.queries[q] for q in query_ids]
    keep = {d for qid in query_ids for d in data.qrels[qid]}
    if queries:
        encoder = Encoder(base, precision=precision, show_progress=False)
        encoder.prepare(len(texts))
        scores = encoder.encode(queries, kind="query") @ encoder.encode(texts, kind="document").T
        top = np.argpartition(-scores, min(depth, len(doc_ids) - 1), axis=1)[:, :depth]
        lexical, _ = BM25Index(texts).search(queries, k=min(depth, len(doc_ids)))
        keep |= {doc_ids[i] for i in np.concatenate([top.ravel(), lexical.ravel()]).tolist()}
    pooled = EvalSet(name=data.name, corpus={d: data.corpus[d] for d in doc_ids if d in keep},
                     queries=data.queries, qrels=data.qrels)
    logger.info("gate: scoring on a pool of %d of %d dev documents (judged + top %d of the base and of BM25)",
                len(pooled.corpus), len(doc_ids), depth)
    return write_beir(pooled, out_dir)
