"""Search latency on a 10k-document index: in process, and over HTTP at one and at 20 clients.

The index: SciFact's 5,183 abstracts + arxiv_math's 3,397 + CISI's 1,460 = 10,040
real documents (from ``$FIELDTUNE_SHARED_DATA``, ids prefixed with the set's name),
built with ``fieldtune index`` defaults (minilm, precision auto, int8 storage) into
``--index`` unless it exists there already (then it is reused).

The queries: the three sets' own queries (SciFact 1,109, CISI 112, arxiv_math_t2a
3,397 titles), shuffled with a fixed seed, each sent *once* in each measurement,
so every figure below is a cache miss of the query-vector LRU except the row that
says it repeats queries.

1. In process (``Index.search``): hybrid, dense and BM25 p50/p95 at one caller; a
   repeated query (LRU hit); the query encode alone; and whether running BM25 in a
   thread while the query is encoded pays (sequential vs overlapped, same queries).
2. HTTP (``fieldtune serve`` in a child process, real uvicorn on loopback, as
   ``load_http.py``): the first query after start, then p50/p95 at one client, then
   p50/p99/errors at 20 concurrent clients, sent once with ``httpx.AsyncClient`` and once with
   ``load_http.py``'s bare keep-alive client (``--client raw``), which takes less of the
   2 cores the client shares with the server (each row states the client's and the
   server's CPU milliseconds a request).

Writes ``benchmarks/results/search_latency.json`` and ``.md`` with the CPU model and
flags and the load average before and after. The machine is shared: run it once.

    python benchmarks/search_latency.py --index out/search-latency-index
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SHARED_DATA, hardware, hardware_line  # noqa: E402
from load_http import load, running_server  # noqa: E402

CORPORA = ("scifact", "arxiv_math", "cisi")
QUERY_SETS = ("scifact", "cisi", "arxiv_math_t2a")
TARGETS = {"inprocess_hybrid_p50_ms": 15.0, "http_p50_ms": 25.0, "concurrent_p99_ms": 250.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=Path("out/search-latency-index"),
                        help="index directory: reused if it exists, else built from the 10k mixture")
    parser.add_argument("--per-mode", type=int, default=200, help="queries per in-process measurement")
    parser.add_argument("--http-queries", type=int, default=200, help="sequential HTTP queries at one client")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000, help="requests from the concurrent clients")
    parser.add_argument("--out", type=Path, default=RESULTS / "search_latency")
    return parser.parse_args(argv)


def mixture_corpus(path: Path) -> int:
    """Write the 10k-document corpus (JSONL, ids ``set:id``); returns the number of documents."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for name in CORPORA:
            with (SHARED_DATA / name / "corpus.jsonl").open(encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        record = json.loads(line)
                        doc = {"_id": f"{name}:{record['_id']}", "title": record.get("title", ""),
                               "text": record.get("text", "")}
                        out.write(json.dumps(doc) + "\n")
                        count += 1
    return count


def mixture_queries(seed: int = 0) -> list[str]:
    texts: dict[str, None] = {}
    for name in QUERY_SETS:
        with (SHARED_DATA / name / "queries.jsonl").open(encoding="utf-8") as handle:
            for line in handle:
                text = json.loads(line)["text"].strip() if line.strip() else ""
                if text:
                    texts[text[:900]] = None
    queries = list(texts)
    random.Random(seed).shuffle(queries)
    return queries


def ensure_index(root: Path) -> dict[str, Any]:
    """Build the index unless it is there; the build's wall time (None when reused)."""
    if (root / "index.json").is_file():
        return {"built": False, "build_s": None}
    from fieldtune.search import Index

    root.parent.mkdir(parents=True, exist_ok=True)
    corpus = root.parent / f"{root.name}-corpus.jsonl"
    mixture_corpus(corpus)
    start = time.perf_counter()
    Index.build(corpus, root, progress=True)
    return {"built": True, "build_s": round(time.perf_counter() - start, 1)}


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def rank(pct: float) -> float:  # nearest rank
        return ordered[max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))]

    return {"n": len(ordered), "p50_ms": round(rank(50), 2), "p95_ms": round(rank(95), 2),
            "p99_ms": round(rank(99), 2), "mean_ms": round(statistics.fmean(ordered), 2)}


def timed(call: Callable[[str], Any], queries: list[str]) -> dict[str, float]:
    """Wall-clock percentiles of ``call`` per query, and this process's mean CPU time a call (on a busy
    machine wall time grows with the other processes' load; CPU time much less)."""
    times = []
    cpu = time.process_time()
    for query in queries:
        start = time.perf_counter()
        call(query)
        times.append((time.perf_counter() - start) * 1000)
    return {**percentiles(times), "cpu_ms": round((time.process_time() - cpu) * 1000 / len(queries), 2)}


def concurrent_in_process(index: Any, queries: list[str], threads: int) -> dict[str, Any]:
    """``threads`` threads searching (hybrid, k=10) through ``queries`` once: the search alone under concurrency."""
    pending = iter(queries)
    lock = threading.Lock()
    times: list[float] = []
    batches, answered = index._coalescer.batches, index._coalescer.queries

    def worker() -> None:
        while True:
            with lock:
                query = next(pending, None)
            if query is None:
                return
            start = time.perf_counter()
            index.search(query, k=10)
            times.append((time.perf_counter() - start) * 1000)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    start = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    wall = time.perf_counter() - start
    ran = index._coalescer.batches - batches
    return {"threads": threads, **percentiles(times), "searches_per_s": round(len(times) / wall, 1),
            "mean_batch": round((index._coalescer.queries - answered) / ran, 1) if ran else None}


def in_process(root: Path, queries: list[str], per_mode: int, threads: int) -> dict[str, Any]:
    from fieldtune.search import Index
    from fieldtune.search.retrieval import bm25_hits

    index = Index.open(root)
    start = time.perf_counter()
    index.warm_up()
    out: dict[str, Any] = {"warm_up_s": round(time.perf_counter() - start, 2)}
    slices = iter(range(0, 10 * per_mode, per_mode))

    def fresh() -> list[str]:
        first = next(slices)
        return queries[first : first + per_mode]

    for mode in ("hybrid", "dense", "bm25"):
        out[mode] = timed(lambda q, m=mode: index.search(q, k=10, mode=m), fresh())
    repeated = fresh()[:20]
    for query in repeated:  # once into the LRU, then measured
        index.search(query, k=10)
    out["hybrid_repeated"] = timed(lambda q: index.search(q, k=10), repeated * 5)
    embedder = index._query_embedder()
    out["encode"] = timed(lambda q: embedder.encode([q]), fresh())
    state = index._state
    out["bm25_candidates"] = timed(lambda q: bm25_hits(state, [q], index.candidates), fresh())
    # BM25 in a second thread while the query is encoded, against one after the other (same queries).
    overlap = fresh()
    with ThreadPoolExecutor(max_workers=1) as pool:

        def overlapped(query: str) -> None:
            lexical = pool.submit(bm25_hits, state, [query], index.candidates)
            embedder.encode([query])
            lexical.result()

        out["encode_then_bm25"] = timed(lambda q: (embedder.encode([q]), bm25_hits(state, [q], index.candidates)),
                                        overlap)
        out["encode_with_bm25_in_a_thread"] = timed(overlapped, overlap)
    out["threads"] = concurrent_in_process(index, fresh() + fresh() + fresh(), threads)
    out["cache"] = index.query_cache.stats()
    out["precision"] = str(index._get_encoder().precision.value)
    return out


def over_http(root: Path, queries: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The HTTP rows; every query the server gets is new to it (its LRU is its own, not this process's).

    One client: the queries after the in-process ones; 20 httpx clients: the next ones; 20 raw
    clients: the first ones (asked in this process only, never of the server).
    """
    first_http = 10 * args.per_mode
    one = queries[first_http : first_http + args.http_queries]
    many_by_client = {"httpx": queries[first_http + args.http_queries :][: args.requests],
                      "raw": queries[: args.requests]}
    out: dict[str, Any] = {}
    start = time.perf_counter()
    with running_server(root) as url:
        out["server_ready_s"] = round(time.perf_counter() - start, 1)  # process start, model, warm-up
        server_pid = _child_pid()
        with httpx.Client(base_url=url, timeout=60) as http:
            first = time.perf_counter()
            http.get("/search", params={"q": "first query after start: bone fractures", "k": "10"}).raise_for_status()
            out["first_query_ms"] = round((time.perf_counter() - first) * 1000, 1)
            errors = 0

            def get(query: str) -> None:
                nonlocal errors
                if http.get("/search", params={"q": query, "k": "10", "mode": "hybrid"}).status_code != 200:
                    errors += 1

            out["one_client"] = {**timed(get, one), "errors": errors}
        for key, client in (("concurrent", "httpx"), ("concurrent_raw", "raw")):
            many = many_by_client[client]
            settings = argparse.Namespace(requests=len(many), clients=args.clients, k=10, mode="hybrid",
                                          max_seconds=600.0, client=client)
            before = _cpu_seconds(server_pid), resource.getrusage(resource.RUSAGE_SELF)
            run = asyncio.run(load(url, many, settings))
            after = _cpu_seconds(server_pid), resource.getrusage(resource.RUSAGE_SELF)
            client_s = sum(getattr(after[1], f) - getattr(before[1], f) for f in ("ru_utime", "ru_stime"))
            out[key] = {"clients": args.clients, "client": client, **run,
                        "server_cpu_ms_per_request": round((after[0] - before[0]) * 1000 / run["requests"], 2),
                        "client_cpu_ms_per_request": round(client_s * 1000 / run["requests"], 2)}
        out["server_query_cache"] = httpx.get(url + "/health", timeout=10).json()["index"].get("query_cache")
    return out


def _child_pid() -> int:
    """The server's process id (the one child this process has started)."""
    children = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        children += Path(f"/proc/{os.getpid()}/task/{task}/children").read_text().split()
    return int(children[0])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def to_markdown(result: dict[str, Any]) -> str:
    idx, local, http = result["index"], result["in_process"], result["http"]
    verdict = result["targets"]
    lines = [
        "# Search latency (`benchmarks/search_latency.py`)",
        "",
        f"Index: {idx['documents']:,} documents ({', '.join(CORPORA)}), {idx['chunks']:,} chunks, model "
        f"{idx['model']}, {idx['dimension']} dims, {idx['storage']} storage, queries encoded in "
        f"{local['precision']}, exact search (ANN above {idx['ann_threshold']:,} chunks).",
        f"Queries: {result['queries']['distinct']:,} distinct real queries ({', '.join(QUERY_SETS)}), each sent "
        "once per row (cache misses) except the repeated row.",
        f"Load average (1 min) before / after: {result['load_before'][0]:.2f} / {result['load_after'][0]:.2f} "
        f"on {result['hardware']['cores']} cores (a shared machine: other jobs ran meanwhile).",
        "",
        "| in process, one caller | p50 ms | p95 ms | n | CPU ms a call |",
        "|---|---:|---:|---:|---:|",
    ]
    labels = [("hybrid", "hybrid search (k=10)"), ("dense", "dense search"), ("bm25", "BM25 search"),
              ("hybrid_repeated", "hybrid, repeated query (LRU hit)"), ("encode", "query encode alone"),
              ("bm25_candidates", "BM25 candidates alone (200)"),
              ("encode_then_bm25", "encode, then BM25"),
              ("encode_with_bm25_in_a_thread", "encode with BM25 in a thread")]
    for key, text in labels:
        row = local[key]
        lines.append(f"| {text} | {row['p50_ms']} | {row['p95_ms']} | {row['n']} | {row.get('cpu_ms', '')} |")
    many_local = local["threads"]
    lines += [
        "",
        "| in process, concurrent | p50 ms | p99 ms | searches/s | mean batch |",
        "|---|---:|---:|---:|---:|",
        f"| {many_local['threads']} threads, hybrid, {many_local['n']} searches | {many_local['p50_ms']} "
        f"| {many_local['p99_ms']} | {many_local['searches_per_s']} | {many_local['mean_batch']} |",
    ]
    one = http["one_client"]
    lines += [
        "",
        "| HTTP (`fieldtune serve`, uvicorn, loopback) | p50 ms | p95 ms | p99 ms | errors | req/s "
        "| CPU ms a request: server / client |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| first query after start | {http['first_query_ms']} | | | 0 | | |",
        f"| 1 client, hybrid | {one['p50_ms']} | {one['p95_ms']} | {one['p99_ms']} | {one['errors']} | | |",
    ]
    for key in ("concurrent", "concurrent_raw"):
        many = http[key]
        lines.append(
            f"| {many['clients']} clients ({many['client']}), hybrid, {many['requests']} requests | {many['p50_ms']} "
            f"| | {many['p99_ms']} | {many['errors']} | {many['requests_per_s']} "
            f"| {many['server_cpu_ms_per_request']} / {many['client_cpu_ms_per_request']} |"
        )
    lines += [
        "",
        "Targets (issue 15): " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in verdict.items()),
        "",
        f"Hardware: {hardware_line(result['hardware'])}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    build = ensure_index(args.index)
    queries = mixture_queries()
    needed = 10 * args.per_mode + args.http_queries + args.requests
    if len(queries) < needed:
        raise SystemExit(f"{len(queries)} distinct queries; the settings need {needed}")
    manifest = json.loads((args.index / "index.json").read_text(encoding="utf-8"))
    local = in_process(args.index, queries, args.per_mode, args.clients)
    http = over_http(args.index, queries, args)
    result = {
        "hardware": hardware(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "index": {"path": str(args.index), **build, "documents": manifest["counts"]["documents"],
                  "chunks": manifest["counts"]["chunks"], "model": manifest["model"]["spec"],
                  "dimension": manifest["dimension"], "storage": manifest["storage"],
                  "ann_threshold": manifest["ann"]["threshold"]},
        "queries": {"distinct": len(queries), "sets": list(QUERY_SETS)},
        "in_process": local,
        "http": http,
    }
    result["targets"] = {
        "in-process hybrid p50 <= 15 ms": local["hybrid"]["p50_ms"] <= TARGETS["inprocess_hybrid_p50_ms"],
        "HTTP p50 <= 25 ms at 1 client": http["one_client"]["p50_ms"] <= TARGETS["http_p50_ms"],
    }
    for key in ("concurrent", "concurrent_raw"):
        many = http[key]
        result["targets"][f"20 clients ({many['client']}): 0 errors and p99 <= 250 ms"] = (
            many["errors"] == 0 and many["p99_ms"] <= TARGETS["concurrent_p99_ms"]
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    markdown = to_markdown(result)
    args.out.with_suffix(".md").write_text(markdown, encoding="utf-8")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
