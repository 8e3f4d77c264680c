"""Issue 14's probe, reproduced with fieldtune: query-side distillation on SciFact's training queries.

Teacher: for each of SciFact's 809 training queries (texts only, the train
judgements are not read unless ``--labelled``), the union of the top-50 by
BM25 (fieldtune.bm25) and the top-50 by the base model (dense), scored
``0.5 * minmax(dense) + 0.5 * minmax(BM25)`` over those candidates. Student:
:func:`fieldtune.training.query_side.train_query_side` (listwise KL, 5 epochs,
one thread). Evaluation on the test split: nDCG@10 of the base and of the
query-adapted model (and of its 0.5/0.5 average with the base), with paired
bootstrap CIs (fieldtune.evaluate). The documents are encoded once, by the
base (cached by Encoder); the adapted model's document route is the base's,
which the script checks by fingerprint before reusing those vectors.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/query_side_probe.py [--labelled] [--epochs 5]

Writes ``benchmarks/results/query_side_probe[_labelled].{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, SHARED_DATA, hardware, hardware_line  # noqa: E402

from fieldtune.bm25 import BM25Index  # noqa: E402
from fieldtune.encoding import Encoder, document_text, truncate  # noqa: E402
from fieldtune.evaluate.beir import load_beir  # noqa: E402
from fieldtune.evaluate.bootstrap import paired_bootstrap  # noqa: E402
from fieldtune.evaluate.metrics import PRIMARY_METRIC, per_query_scores  # noqa: E402
from fieldtune.evaluate.systems import DEFAULT_DEPTH, self_hits, top_k_run  # noqa: E402
from fieldtune.model_record import ModelRecord  # noqa: E402
from fieldtune.models import load_model  # noqa: E402
from fieldtune.search.fusion import DENSE_WEIGHT, Hits, weighted_scores  # noqa: E402
from fieldtune.search.index import CANDIDATES  # noqa: E402
from fieldtune.training.query_model import document_fingerprint  # noqa: E402
from fieldtune.training.query_side import QuerySideConfig, average_query_route, train_query_side  # noqa: E402
from fieldtune.types import EvalSet, ScoredQuery  # noqa: E402

BASE = "minilm"
TOP_K = 50
DIMS = (384, 128)


def minmax(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def teacher_examples(
    texts: dict[str, str], doc_ids: list[str], docs: np.ndarray, bm25: BM25Index, encoder: Encoder,
    positives: dict[str, list[str]] | None,
) -> list[ScoredQuery]:
    """The hybrid teacher's candidates and scores for each query (judged positives added when labelled)."""
    query_ids = list(texts)
    dense = encoder.encode([texts[q] for q in query_ids], kind="query") @ docs.T
    found, found_scores = bm25.search([texts[q] for q in query_ids], k=len(doc_ids))
    lexical = np.zeros_like(dense)
    for row in range(len(query_ids)):
        lexical[row, found[row]] = found_scores[row]
    index = {d: i for i, d in enumerate(doc_ids)}
    examples = []
    for row, qid in enumerate(query_ids):
        top_dense = np.argsort(-dense[row], kind="stable")[:TOP_K]
        top_lexical = found[row][:TOP_K][found_scores[row][:TOP_K] > 0]
        candidates = list(dict.fromkeys([*top_dense.tolist(), *top_lexical.tolist()]))
        judged = [index[d] for d in (positives or {}).get(qid, [])]
        candidates += [i for i in judged if i not in candidates]
        rows = np.asarray(candidates)
        scores = 0.5 * minmax(dense[row, rows]) + 0.5 * minmax(lexical[row, rows])
        examples.append(ScoredQuery(qid, texts[qid], tuple(doc_ids[i] for i in rows),
                                    tuple(float(s) for s in scores), tuple(doc_ids[i] for i in judged)))
    return examples


def ndcg_per_query(data: EvalSet, query_ids: list[str], doc_ids: list[str], queries: np.ndarray,
                   docs: np.ndarray, dim: int) -> np.ndarray:
    scores = truncate(queries, dim) @ truncate(docs, dim).T
    run = top_k_run(scores, query_ids, doc_ids, DEFAULT_DEPTH, self_hits(data, query_ids))
    return per_query_scores(data.qrels, run, query_ids, (PRIMARY_METRIC,))[PRIMARY_METRIC.key]


def hybrid_per_query(data: EvalSet, query_ids: list[str], doc_ids: list[str], queries: np.ndarray,
                     docs: np.ndarray, lexical: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """nDCG@10 of score fusion (as ``search`` does it) of the dense and BM25 top candidates, per query."""
    dense = queries @ docs.T
    excluded = self_hits(data, query_ids)
    run = {}
    for row, qid in enumerate(query_ids):
        top = np.argsort(-dense[row], kind="stable")[:CANDIDATES]
        found, scores = lexical[0][row][:CANDIDATES], lexical[1][row][:CANDIDATES]
        fused = weighted_scores(Hits.ranked(top, dense[row, top]), Hits.ranked(found[scores > 0], scores[scores > 0]),
                                DENSE_WEIGHT)
        run[qid] = {doc_ids[k]: float(v) for k, v in zip(fused.keys.tolist(), fused.scores.tolist(), strict=True)
                    if not (doc_ids[k] == qid and qid in excluded)}
    return per_query_scores(data.qrels, run, query_ids, (PRIMARY_METRIC,))[PRIMARY_METRIC.key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "scifact")
    parser.add_argument("--epochs", type=float, default=5.0)
    parser.add_argument("--labelled", action="store_true", help="train on the train judgements (loss 'labelled')")
    parser.add_argument("--loss", default=None, help="default: kl, or labelled with --labelled")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = time.monotonic()
    test, train = load_beir(args.data, "test"), load_beir(args.data, "train")
    doc_ids = list(test.corpus)
    encoder = Encoder(BASE, show_progress=False)
    docs = encoder.encode([document_text(test.corpus[d].title, test.corpus[d].text) for d in doc_ids], kind="document")
    encoded_at = time.monotonic()
    bm25 = BM25Index([document_text(test.corpus[d].title, test.corpus[d].text) for d in doc_ids])
    train_texts = {q: train.queries[q] for q in sorted(train.qrels, key=str) if train.queries.get(q, "").strip()}
    positives = ({q: [d for d, r in train.qrels[q].items() if r > 0] for q in train_texts} if args.labelled else None)
    examples = teacher_examples(train_texts, doc_ids, docs, bm25, encoder, positives)
    teacher_at = time.monotonic()
    loss = args.loss or ("labelled" if args.labelled else "kl")
    config = QuerySideConfig(base=BASE, loss=loss, epochs=args.epochs, num_threads=args.threads, device="cpu")
    vectors = dict(zip(doc_ids, docs, strict=True))
    with tempfile.TemporaryDirectory(prefix="query-side-probe-") as tmp:
        model_dir = Path(tmp) / "model"
        result = train_query_side(examples, vectors, model_dir=model_dir, config=config)
        trained_at = time.monotonic()
        base_fingerprint = document_fingerprint(load_model(BASE, device="cpu"))
        if ModelRecord.read(model_dir).extra["document_fingerprint"] != base_fingerprint:
            raise SystemExit("the adapted model's document route is not the base's: documents must be re-encoded")
        averaged = average_query_route(model_dir, BASE, 0.5, Path(tmp) / "averaged")
        query_ids = test.judged_query_ids
        texts = [test.queries[q] for q in query_ids]
        encoded = {
            "base": encoder.encode(texts, kind="query"),
            "query-adapted": Encoder(str(model_dir), show_progress=False, use_cache=False).encode(texts, kind="query"),
            "averaged 0.5": Encoder(str(averaged), show_progress=False, use_cache=False).encode(texts, kind="query"),
        }
    table: dict[str, Any] = {}
    lexical = bm25.search(texts, k=CANDIDATES)
    hybrid = {name: hybrid_per_query(test, query_ids, doc_ids, q, docs, lexical) for name, q in encoded.items()}
    table["hybrid"] = {name: round(float(v.mean()), 4) for name, v in hybrid.items()}
    for name in ("query-adapted", "averaged 0.5"):
        table["hybrid"][f"{name} - base"] = paired_bootstrap(hybrid[name], hybrid["base"], seed=0).to_dict()
    for dim in DIMS:
        per = {name: ndcg_per_query(test, query_ids, doc_ids, q, docs, dim) for name, q in encoded.items()}
        table[str(dim)] = {name: round(float(v.mean()), 4) for name, v in per.items()}
        for name in ("query-adapted", "averaged 0.5"):
            table[str(dim)][f"{name} - base"] = paired_bootstrap(per[name], per["base"], seed=0).to_dict()
    report = {
        "protocol": "labelled (train qrels)" if args.labelled else "unlabelled (train query texts only)",
        "data": str(args.data), "train_queries": len(examples), "test_queries": len(query_ids),
        "mean_candidates": round(float(np.mean([len(e.candidate_ids) for e in examples])), 1),
        "config": config.to_dict(), "steps": result.steps, "stopped_because": result.stopped_because.value,
        "ndcg@10": table,
        "seconds": {"encode_corpus": round(encoded_at - started, 1), "teacher": round(teacher_at - encoded_at, 1),
                    "train": round(trained_at - teacher_at, 1), "total": round(time.monotonic() - started, 1)},
        "hardware": hardware(),
    }
    name = "query_side_probe_labelled" if args.labelled else "query_side_probe"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (RESULTS / f"{name}.md").write_text(markdown(report), encoding="utf-8")
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Query-side adaptation on SciFact: {report['protocol']}", "",
             f"{report['train_queries']} training queries ({report['mean_candidates']} teacher candidates each), "
             f"{report['test_queries']} test queries; loss {report['config']['loss']}, {report['steps']} steps "
             f"({report['stopped_because']}); seconds {report['seconds']}.", "",
             f"Machine: {hardware_line(report['hardware'])}.", "",
             "| dim | base | query-adapted | Δ [95% CI] | averaged 0.5 | Δ [95% CI] |", "|---|---|---|---|---|---|"]
    for dim, row in report["ndcg@10"].items():
        cells = [dim, f"{row['base']:.4f}"]
        for name in ("query-adapted", "averaged 0.5"):
            diff = row[f"{name} - base"]
            cells += [f"{row[name]:.4f}", f"{diff['delta']:+.4f} [{diff['ci_low']:+.4f}, {diff['ci_high']:+.4f}]"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
