"""The hybrid fusion weight a model deserves, chosen on a build's labelled dev queries.

Hybrid search fuses ``w * dense + (1 - w) * bm25`` (min-max normalised scores,
:func:`fieldtune.search.fusion.weighted_scores`). ``w = 0.5`` was chosen on
SciFact with the base model; a model tuned to the corpus may deserve more of
the say (the quality issue). The build scores the installed model's hybrid at
each weight of a grid on its dev queries and records the best (ties go to the
weight nearest the default, so noise does not move it); ``fieldtune index``
of that model then uses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fieldtune.bm25 import BM25Index
from fieldtune.encoding import Encoder, Precision, document_text
from fieldtune.evaluate.beir import load_beir
from fieldtune.evaluate.metrics import PRIMARY_METRIC, mean_scores, per_query_scores
from fieldtune.search.fusion import DENSE_WEIGHT, Hits, weighted_scores

#: Dense weights tried (0 = BM25 alone, 1 = dense alone).
GRID = tuple(round(step / 10, 1) for step in range(11))
#: Candidates each system contributes per query (as hybrid search does).
CANDIDATE_DEPTH = 100


def choose_dense_weight(model: str, dev_dir: Path,
                        precision: Precision | str = Precision.AUTO) -> dict[str, Any] | None:
    """``{"dense_weight", "scores" (weight -> nDCG@10), "queries", "dev_set"}``, or None without judged dev queries."""
    data = load_beir(dev_dir)
    query_ids = [qid for qid in data.judged_query_ids if data.queries[qid].strip()]
    if not query_ids or not data.corpus:
        return None
    doc_ids = list(data.corpus)
    texts = [document_text(data.corpus[d].title, data.corpus[d].text) for d in doc_ids]
    encoder = Encoder(model, precision=precision, show_progress=False)
    encoder.prepare(len(texts))
    dense = encoder.encode([data.queries[q] for q in query_ids], kind="query") @ encoder.encode(
        texts, kind="document").T
    depth = min(CANDIDATE_DEPTH, len(doc_ids))
    lexical_ids, lexical_scores = BM25Index(texts).search([data.queries[q] for q in query_ids], k=depth)
    candidates = []
    for row in range(len(query_ids)):
        top = np.argpartition(-dense[row], depth - 1)[:depth]
        keep = lexical_scores[row] > 0
        candidates.append((Hits.ranked(top, dense[row][top]), Hits.ranked(lexical_ids[row][keep],
                                                                         lexical_scores[row][keep])))
    key = PRIMARY_METRIC.key
    scores = {}
    for weight in GRID:
        run = {}
        for qid, (semantic, lexical) in zip(query_ids, candidates, strict=True):
            fused = weighted_scores(semantic, lexical, weight).top(10)
            run[qid] = {doc_ids[k]: float(s) for k, s in zip(fused.keys.tolist(), fused.scores.tolist(), strict=True)}
        scores[weight] = round(mean_scores(per_query_scores(data.qrels, run, query_ids))[key], 4)
    best = max(GRID, key=lambda w: (scores[w], -abs(w - DENSE_WEIGHT)))
    return {"dense_weight": best, "scores": {str(w): s for w, s in scores.items()}, "metric": key,
            "queries": len(query_ids), "dev_set": Path(dev_dir).name}
