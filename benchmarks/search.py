"""Search index benchmark: ANN recall and latency at scale, storage, funnel, and retrieval quality.

Synthetic part (``--sizes``), per size N, 384 dimensions:

* corpus and queries are *embedding-like* random unit vectors: drawn from a
  Gaussian fitted to all-MiniLM-L6-v2 embeddings of SciFact abstracts
  (``benchmarks/data/minilm_scifact_gaussian.json``: its eigenvalues and mean
  in decreasing-variance order), mixed by a fixed random rotation within each
  block of 64 coordinates (so the first 64/128/256 coordinates hold the leading
  principal components, as Matryoshka training aims for), then normalised.
  Queries are fresh draws from the same distribution (not perturbed corpus
  vectors), seeded.
  With ``--isotropic``, also uniformly random unit vectors (no structure at all:
  the hardest case for any ANN index, included to show why it is not the target);
* ground truth is exact float32 search; recall@10 is |ANN top-10 ∩ exact top-10| / 10;
* the code measured is the index's own: int8 segment files (memory-mapped),
  the usearch HNSW graph built from them with every core, and
  ``fieldtune.search.retrieval.dense_hits`` (``CANDIDATES`` = 200 graph candidates rescored
  exactly against the stored int8 vectors, as ``Index.search`` does);
* latency is single-query, one thread, after a warm-up; QPS is one batch over
  every core.

Real part (unless ``--skip-real``): indexes of ``--sets`` (default scifact,
cisi) built with the base model, nDCG@10 of dense, bm25 and hybrid (RRF and
score fusion at several weights and candidate depths) over documents, and the
Matryoshka funnel's dims. Fusion settings are tuned on SciFact's *train*
queries and reported on the test queries of every set.

    python benchmarks/search.py [--sizes 100000,1000000] [--skip-real] [--sets scifact,cisi]
                                [--isotropic] [--ef 100,200,400] [--merge EARLIER.json ...]

``--merge`` folds the JSON of earlier runs into the report (alone, with
``--sizes '' --skip-real``, it only re-renders them): the committed results are
the main run plus a second 1M run that measured larger beams.

Writes ``benchmarks/results/search.json`` and ``benchmarks/results/search.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, ROOT, SHARED_DATA, hardware, hardware_line  # noqa: E402

from fieldtune.search.ann import AnnConfig, AnnIndex  # noqa: E402
from fieldtune.search.backends import StoredVectors  # noqa: E402
from fieldtune.search.backends.exact import ExactBackend  # noqa: E402
from fieldtune.search.backends.usearch_hnsw import UsearchBackend  # noqa: E402
from fieldtune.search.fusion import DENSE_WEIGHT  # noqa: E402
from fieldtune.search.index import CANDIDATES  # noqa: E402
from fieldtune.search.manifest import DenseSettings, IndexManifest  # noqa: E402
from fieldtune.search.options import Storage  # noqa: E402
from fieldtune.search.retrieval import dense_hits  # noqa: E402
from fieldtune.search.state import IndexState  # noqa: E402
from fieldtune.search.store import Segment, VectorStore, quantize, write_segment  # noqa: E402
from fieldtune.types import Chunk, Document  # noqa: E402
from fieldtune.workdir import atomic_write, write_json  # noqa: E402

logger = logging.getLogger("bench")
DIM = 384
DIMS = [384, 256, 128, 64]
GAUSSIAN = Path(__file__).resolve().parent / "data" / "minilm_scifact_gaussian.json"
BLOCK = 50_000


# -- synthetic data -------------------------------------------------------------------------------


def block_rotation(size: int = 64, seed: int = 0) -> np.ndarray:
    """A fixed random rotation acting within each group of ``size`` coordinates.

    It spreads the variance of a group over its coordinates, as in real
    embeddings (whose coordinates are not principal components), while a
    prefix of 64, 128 or 256 coordinates spans the same subspace as before,
    so Matryoshka truncation keeps the leading principal components.
    """
    rng = np.random.default_rng(seed)
    rotation = np.zeros((DIM, DIM), dtype=np.float32)
    for start in range(0, DIM, size):
        q, _ = np.linalg.qr(rng.standard_normal((size, size)))
        rotation[start : start + size, start : start + size] = q
    return rotation


def embedding_like(n: int, seed: int) -> np.ndarray:
    """Unit vectors from the Gaussian fit of real MiniLM embeddings (see the module docstring)."""
    fit = json.loads(GAUSSIAN.read_text())
    std = np.sqrt(np.asarray(fit["eigenvalues"], dtype=np.float32))
    mean = np.asarray(fit["mean"], dtype=np.float32)
    rotation = block_rotation()
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, BLOCK):
        block = rng.standard_normal((min(BLOCK, n - start), DIM), dtype=np.float32) * std + mean
        block = block @ rotation
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def isotropic(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = rng.standard_normal((n, DIM), dtype=np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def exact_top(corpus: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """Exact float32 top-k row ids per query (the ground truth)."""
    top = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 100):
        scores = queries[start : start + 100] @ corpus.T
        best = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1)
        top[start : start + 100] = np.take_along_axis(best, order, axis=1)
    return top


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    return float(
        np.mean(
            [
                len(set(f[:10].tolist()) & set(t.tolist())) / 10
                for f, t in zip(found, truth, strict=True)
            ]
        )
    )


def write_vectors(directory: Path, vectors: np.ndarray) -> Segment:
    """A segment of ``vectors`` with one placeholder chunk per row (the index's own file format)."""
    n = len(vectors)
    docs = [Document(id=str(i), text="") for i in range(n)]
    chunks = [Chunk(f"{i}#0", str(i), 0, "", 0, 0, 0) for i in range(n)]
    write_segment(directory, docs, chunks, vectors, storage=Storage.INT8, dims=DIMS)
    return Segment(directory, Storage.INT8, DIMS)


def state_of(store: VectorStore, ann: AnnIndex | None) -> IndexState:
    rows = store.rows
    manifest = IndexManifest(dimension=DIM, dims=tuple(DIMS))
    vectors = StoredVectors(store, np.zeros(rows, dtype=bool), DIM)
    settings = DenseSettings(threshold=0)
    backend = ExactBackend(vectors) if ann is None else UsearchBackend(ann, vectors, settings)
    empty = np.zeros(0, dtype=np.int64)
    return IndexState(Path("."), manifest, vectors, np.arange(rows), [], {}, None, empty, backend)


def timed(fn, repeats: list[Any]) -> tuple[list[Any], np.ndarray]:
    results, seconds = [], []
    for item in repeats:
        started = time.perf_counter()
        results.append(fn(item))
        seconds.append(time.perf_counter() - started)
    return results, np.asarray(seconds)


def latency(seconds: np.ndarray) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(seconds, 50)) * 1e3, 3),
        "p99_ms": round(float(np.percentile(seconds, 99)) * 1e3, 3),
    }


def synthetic(n: int, args: argparse.Namespace, kind: str) -> dict[str, Any]:
    work = Path(args.work) / f"synthetic-{kind}-{n}"
    shutil.rmtree(work, ignore_errors=True)
    draw = embedding_like if kind == "embedding-like" else isotropic
    logger.info("%s: drawing %d corpus vectors and %d queries", kind, n, args.queries)
    corpus, queries = draw(n, 1), draw(args.queries, 2)
    truth = exact_top(corpus, queries)
    started = time.perf_counter()
    segment = write_vectors(work / "segment", corpus)
    write_seconds = time.perf_counter() - started
    store = VectorStore([segment])
    stored = store.nbytes()
    float16, _ = quantize(corpus[:1000], Storage.FLOAT16)
    result: dict[str, Any] = {
        "n": n,
        "kind": kind,
        "queries": args.queries,
        "bytes": {
            "float32": int(corpus.nbytes),
            "int8_total": int(sum(stored.values())),
            "int8_parts": stored,
            "float16_total": int(float16.itemsize * n * DIM + stored["norms"]),
        },
        "segment_write_s": round(write_seconds, 1),
    }
    result["bytes"]["int8_fraction"] = round(result["bytes"]["int8_total"] / corpus.nbytes, 4)
    del corpus
    exact_state = state_of(store, None)
    sample = queries[: args.exact_queries]
    found, seconds = timed(
        lambda q: exact_state.backend.search(q[None], 10, DIM)[0].keys, sample
    )
    result["exact_int8"] = {
        **latency(seconds),
        "recall@10": recall(found, truth[: len(sample)]),
        "queries": len(sample),
    }
    result["funnel"] = {}
    for dim in (128, 64):
        found, seconds = timed(
            lambda q, d=dim: dense_hits(exact_state, q[None], CANDIDATES, d, 10)[0].keys, sample
        )
        result["funnel"][str(dim)] = {
            **latency(seconds),
            "recall@10": recall(found, truth[: len(sample)]),
        }
    logger.info("%s %d: exact %s funnel %s", kind, n, result["exact_int8"], result["funnel"])
    config = AnnConfig(
        connectivity=args.connectivity,
        expansion_add=args.expansion_add,
        shards=args.shards,
        graph_energy=args.graph_energy,
    )
    started = time.perf_counter()
    graph = AnnIndex.build(
        DIM,
        StoredVectors(store, np.zeros(store.rows, dtype=bool), DIM).live_batches(),  # as Index.build
        config,
        rows=store.rows,
    )
    build_seconds = time.perf_counter() - started
    graph.save(work / "graph")
    ann = AnnIndex.open(work / "graph", config)
    result["ann_build"] = {
        "seconds": round(build_seconds, 1),
        "threads": os.cpu_count(),
        "file_bytes": sum(f.stat().st_size for f in (work / "graph").iterdir()),
        **config.to_dict(),
        "shards": len(ann.shards),
        "graph_dimension": int(ann.shards[0].ndim),
        "scale": ann.scale,
    }
    logger.info("%s %d: HNSW built in %.1fs", kind, n, build_seconds)
    state = state_of(store, ann)
    result["ann"] = []
    for ef in args.ef:
        ann.expansion_search = ef
        dense_hits(state, queries[:20], CANDIDATES, DIM, 10)  # warm-up
        found, seconds = timed(
            lambda q: dense_hits(state, q[None], CANDIDATES, DIM, 10)[0].keys, queries
        )
        ann.parallel = False  # the same query with its shards one after another, one core
        _, serial = timed(
            lambda q: dense_hits(state, q[None], CANDIDATES, DIM, 10)[0].keys, queries
        )
        ann.parallel = True
        raw, _ = timed(lambda q: ann.search(q[None], 10)[0], queries)
        started = time.perf_counter()
        dense_hits(state, queries, CANDIDATES, DIM, 10)
        qps = len(queries) / (time.perf_counter() - started)
        row = {
            "expansion_search": ef,
            "candidates": CANDIDATES,
            "recall@10": round(recall(found, truth), 4),
            "raw_graph_recall@10": round(recall(raw, truth), 4),
            **latency(seconds),
            "one_core_p50_ms": latency(serial)["p50_ms"],
            "qps_batch": round(qps, 1),
        }
        logger.info("%s %d: %s", kind, n, row)
        result["ann"].append(row)
    result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    store.close()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


# -- real data ------------------------------------------------------------------------------------


def evaluate(index: Any, data: Any, query_ids: list[str], **options: Any) -> dict[str, float]:
    from fieldtune.evaluate.metrics import mean_scores, parse_metric, per_query_scores

    started = time.perf_counter()
    batch = index.search_batch([data.queries[q] for q in query_ids], k=10, **options)
    seconds = time.perf_counter() - started
    run = {
        qid: {r.doc_id: float(len(results) - r.rank + 1) for r in results}
        for qid, results in zip(query_ids, batch, strict=True)
    }
    scores = mean_scores(per_query_scores(data.qrels, run, query_ids, (parse_metric("ndcg@10"),)))
    return {
        "ndcg@10": round(scores["ndcg@10"], 4),
        "ms_per_query": round(seconds / len(query_ids) * 1e3, 2),
    }


def real(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from fieldtune.evaluate.beir import load_beir
    from fieldtune.search import Index, IndexNotFoundError

    root = Path(args.work) / f"real-{name}"
    result: dict[str, Any] = {}
    try:
        index = Index.open(root)
    except IndexNotFoundError:
        shutil.rmtree(root, ignore_errors=True)
        started = time.perf_counter()
        index = Index.build(SHARED_DATA / name, root, progress=False)
        result["build_s"] = round(time.perf_counter() - started, 1)
    index._get_encoder().use_cache = True  # re-running a config reuses the query embeddings
    index.search("warm-up: load the model", mode="hybrid")
    info = index.info()
    result.update({"counts": info["counts"], "storage_bytes": info["storage_bytes"]})
    splits = {"test": load_beir(SHARED_DATA / name, "test")}
    if (SHARED_DATA / name / "qrels" / "train.tsv").is_file():
        splits["train"] = load_beir(SHARED_DATA / name, "train")
    for split, data in splits.items():
        ids = data.judged_query_ids
        rows: dict[str, Any] = {"queries": len(ids)}
        rows["dense"] = evaluate(index, data, ids, mode="dense")
        rows["bm25"] = evaluate(index, data, ids, mode="bm25")
        for depth in args.depths:
            index.candidates = depth
            rows[f"hybrid-rrf@{depth}"] = evaluate(index, data, ids, mode="hybrid", fusion="rrf")
            for weight in args.weights:
                index.dense_weight = weight
                rows[f"hybrid-score{weight}@{depth}"] = evaluate(
                    index, data, ids, mode="hybrid", fusion="score"
                )
        index.candidates, index.dense_weight = CANDIDATES, DENSE_WEIGHT
        rows["hybrid-default"] = evaluate(index, data, ids, mode="hybrid")
        for dim in index.dims[1:]:
            rows[f"dense-funnel{dim}"] = evaluate(index, data, ids, mode="dense", dim=dim)
            rows[f"hybrid-funnel{dim}"] = evaluate(index, data, ids, mode="hybrid", dim=dim)
        logger.info("%s %s: %s", name, split, rows)
        result[split] = rows
    return result


# -- report ---------------------------------------------------------------------------------------


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _mb(value: float) -> str:
    return f"{value / 1e6:,.0f}"


ANN_HEAD = [
    "data",
    "N",
    "build s",
    "M / ef_add / shards / graph dim",
    "ef_search",
    "recall@10",
    "graph-only recall@10",
    "p50 ms",
    "p99 ms",
    "one-core p50 ms",
    "QPS (batch)",
]
STORE_HEAD = [
    "data",
    "N",
    "float32 MB",
    "int8 MB (share)",
    "float16 MB",
    "HNSW files MB",
    "exact int8 p50 ms",
    "exact int8 recall@10",
    "funnel 128→384 p50 ms / recall@10",
    "funnel 64→384 p50 ms / recall@10",
    "peak RSS GiB",
]


def _summary(runs: list[dict[str, Any]]) -> list[str]:
    """Per embedding-like size: the smallest measured beam reaching recall@10 >= 0.95."""
    lines = []
    for s in runs:
        if s["kind"] != "embedding-like":
            continue
        good = [
            r
            for r in sorted(s["ann"], key=lambda r: r["expansion_search"])
            if r["recall@10"] >= 0.95
        ]
        if good:
            r = good[0]
            found = (
                f"ef_search {r['expansion_search']} reaches recall@10 {r['recall@10']:.3f} "
                f"at p50 {r['p50_ms']} ms / p99 {r['p99_ms']} ms"
            )
        else:
            found = "no measured ef_search reaches recall@10 0.95"
        lines.append(
            f"- {s['n']:,} vectors: {found}; HNSW build {s['ann_build']['seconds']:.0f} s."
        )
    return ["Summary (embedding-like data):", "", *lines, ""] if lines else []


def _synthetic_tables(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        *_summary(runs),
        "## ANN vs exact search (synthetic 384-d unit vectors)",
        "",
        "Queries are fresh draws from the corpus distribution. Recall@10 is measured against exact "
        "float32 search. The index takes 200 HNSW candidates and rescores them exactly against the "
        "stored int8 vectors (`recall@10`); `graph-only` is the graph's own top 10. Latency: one "
        "query at a time, including the rescoring; a graph of several shards searches them in "
        "parallel, one thread each (`p50 ms`, `p99 ms`), and `one-core p50` is the same query with "
        "the shards searched one after another. QPS: one batch over all cores. An ef_search "
        "below 200 acts as 200 (usearch widens the beam to the number of results asked for). "
        "`exact int8` is the ceiling int8 storage allows: exact search over the stored vectors "
        "against the float32 truth.",
        "",
        _row(ANN_HEAD),
        _row(["---"] * len(ANN_HEAD)),
    ]
    for s in runs:
        b = s["ann_build"]
        for r in s["ann"]:
            lines.append(
                _row(
                    [
                        s["kind"],
                        f"{s['n']:,}",
                        b["seconds"],
                        f"{b['connectivity']} / {b['expansion_add']} / {b.get('shards', 1)} / "
                        f"{b.get('graph_dimension', DIM)}",
                        r["expansion_search"],
                        f"{r['recall@10']:.3f}",
                        f"{r['raw_graph_recall@10']:.3f}",
                        r["p50_ms"],
                        r["p99_ms"],
                        r.get("one_core_p50_ms", r["p50_ms"]),
                        r["qps_batch"],
                    ]
                )
            )
    lines += [
        "",
        "Storage, exact search and the Matryoshka funnel (an exact shortlist of 200 at the "
        "truncated dimension, as `Index.search` makes for k=10, rescored at 384):",
        "",
        _row(STORE_HEAD),
        _row(["---"] * len(STORE_HEAD)),
    ]
    for s in runs:
        by, ex, fu = s["bytes"], s["exact_int8"], s["funnel"]
        lines.append(
            _row(
                [
                    s["kind"],
                    f"{s['n']:,}",
                    _mb(by["float32"]),
                    f"{_mb(by['int8_total'])} ({by['int8_fraction']:.1%})",
                    _mb(by["float16_total"]),
                    _mb(s["ann_build"]["file_bytes"]),
                    ex["p50_ms"],
                    f"{ex['recall@10']:.3f}",
                    f"{fu['128']['p50_ms']} / {fu['128']['recall@10']:.3f}",
                    f"{fu['64']['p50_ms']} / {fu['64']['recall@10']:.3f}",
                    s["peak_rss_gib"],
                ]
            )
        )
    return [*lines, ""]


def _real_table(name: str, r: dict[str, Any]) -> list[str]:
    splits = [s for s in ("test", "train") if s in r]
    head = [
        "system",
        *[f"{s} nDCG@10 ({r[s]['queries']} queries)" for s in splits],
        "ms/query (test)",
    ]
    lines = [
        f"## {name}: nDCG@10 over documents (base model `minilm`, int8 index)",
        "",
        _row(head),
        _row(["---"] * len(head)),
    ]
    for key in r["test"]:
        if key != "queries":
            cells = [f"{r[s][key]['ndcg@10']:.4f}" for s in splits]
            lines.append(_row([key, *cells, r["test"][key]["ms_per_query"]]))
    return [*lines, ""]


def _run_line(run: dict[str, Any]) -> str:
    return (
        f"`python benchmarks/search.py {run['argv']}` ({run['seconds']:.0f}s; load average "
        f"1/5/15 min {run['load_average']['start']} at start, {run['load_average']['end']} at end)"
    )


def markdown(payload: dict[str, Any]) -> str:
    runs = [payload, *payload.get("merged", [])]
    lines = [
        "# Search index benchmark",
        "",
        f"Hardware: {hardware_line(payload['hardware'])}. Generated by "
        + "; then ".join(_run_line(run) for run in runs)
        + ". A load average near or above 2 at the start means other jobs shared the 2 cores, "
        "which makes latencies and build times pessimistic.",
        "",
    ]
    if payload["synthetic"]:
        lines += _synthetic_tables(payload["synthetic"])
    for name, result in payload["real"].items():
        lines += _real_table(name, result)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="100000,1000000", help="comma-separated corpus sizes ('' to skip)"
    )
    parser.add_argument("--skip-real", action="store_true", help="skip the scifact/cisi part")
    parser.add_argument("--sets", default="scifact,cisi")
    parser.add_argument(
        "--isotropic",
        action="store_true",
        help="also uniformly random vectors (at the smallest size)",
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--exact-queries", type=int, default=50)
    parser.add_argument("--connectivity", type=int, default=AnnConfig.connectivity)
    parser.add_argument("--expansion-add", type=int, default=AnnConfig.expansion_add)
    parser.add_argument("--ef", default="100,200,400", help="expansion_search values to measure")
    parser.add_argument("--graph-energy", type=float, default=AnnConfig.graph_energy)
    parser.add_argument(
        "--shards", type=int, default=None, help="HNSW shards (default: the index's own choice)"
    )
    parser.add_argument("--weights", default="0.3,0.5,0.6,0.7,0.8")
    parser.add_argument("--depths", default="50,100,200")
    parser.add_argument("--work", default=str(ROOT / "out" / "bench-search"))
    parser.add_argument("--keep", action="store_true", help="keep the synthetic index files")
    parser.add_argument("--out", default=str(RESULTS / "search"), help="output path without suffix")
    parser.add_argument(
        "--merge", nargs="*", help="JSON results of earlier runs to include in this report"
    )
    args = parser.parse_args()
    args.ef = [int(x) for x in args.ef.split(",")]
    args.weights = [float(x) for x in args.weights.split(",")]
    args.depths = [int(x) for x in args.depths.split(",")]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    started = time.time()
    payload: dict[str, Any] = {
        "hardware": hardware(),
        "argv": " ".join(sys.argv[1:]),
        "load_average": {"start": [round(x, 2) for x in os.getloadavg()]},
        "synthetic": [],
        "real": {},
    }
    sizes = [int(x) for x in args.sizes.split(",") if x]
    if args.isotropic and sizes:
        payload["synthetic"].append(synthetic(min(sizes), args, "isotropic"))
    for n in sizes:
        payload["synthetic"].append(synthetic(n, args, "embedding-like"))
    if not args.skip_real:
        for name in args.sets.split(","):
            payload["real"][name] = real(name, args)
    payload["seconds"] = round(time.time() - started, 1)
    payload["load_average"]["end"] = [round(x, 2) for x in os.getloadavg()]
    merge = list(args.merge or [])
    if merge and not sizes and args.skip_real:  # only re-render earlier results
        payload = json.loads(Path(merge.pop(0)).read_text(encoding="utf-8"))
    for path in merge:
        other = json.loads(Path(path).read_text(encoding="utf-8"))
        payload["synthetic"] += other["synthetic"]
        payload["real"].update(other["real"])
        payload.setdefault("merged", []).append(
            {key: other[key] for key in ("argv", "seconds", "load_average")}
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out.with_suffix(".json"), payload)
    with atomic_write(out.with_suffix(".md")) as handle:
        handle.write(markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
