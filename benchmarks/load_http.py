"""Load test of `fieldtune serve` on loopback: latency and throughput, and no 500 on bad input.

Starts the service in a child process on 127.0.0.1 (a free port) over an index
(``--index``, or one built from ``--corpus`` into a temporary directory), then

1. sends ``--requests`` searches (default 2,000) from ``--clients`` concurrent
   clients (default 20), cycling through the queries of ``--queries`` (a BEIR
   queries.jsonl) or a small built-in list; reports errors, p50, p99 and mean
   latency and requests per second;
2. sends a burst of malformed requests (over-long q, bad k, bad mode, bad dim,
   ...) and checks that every answer is a 4xx and none a 5xx.

Bounded: it stops after the requests or ``--max-seconds``, whichever comes
first, and always stops the server. Writes ``benchmarks/results/load_http.json``
and ``.md``.

    python benchmarks/load_http.py --index out/scifact-index \
        --queries ../shared/data/scifact/queries.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, hardware, hardware_line  # noqa: E402

BUILTIN_QUERIES = [
    "vitamin D deficiency and bone fractures",
    "gene expression in cancer cells",
    "effect of exercise on blood pressure",
    "antibiotic resistance in bacteria",
    "information retrieval evaluation",
    "how do vaccines train the immune system",
    "protein folding chaperones",
    "library classification systems",
    "sleep and memory consolidation",
    "insulin resistance obesity",
]
MALFORMED: list[tuple[str, dict[str, str]]] = [
    ("missing q", {}),
    ("empty q", {"q": ""}),
    ("blank q", {"q": "   "}),
    ("oversized q", {"q": "x" * 5000}),
    ("k=0", {"q": "cells", "k": "0"}),
    ("k=1001", {"q": "cells", "k": "1001"}),
    ("k=abc", {"q": "cells", "k": "abc"}),
    ("k=1e400", {"q": "cells", "k": "1e400"}),
    ("mode=nope", {"q": "cells", "mode": "nope"}),
    ("dim=7", {"q": "cells", "dim": "7"}),
    ("dim=abc", {"q": "cells", "dim": "abc"}),
    ("chunks=maybe", {"q": "cells", "chunks": "maybe"}),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--index", type=Path, help="index directory built by `fieldtune index`")
    source.add_argument("--corpus", type=Path, help="build a temporary index of this corpus first")
    parser.add_argument("--model", default="minilm", help="model for --corpus (default: minilm)")
    parser.add_argument(
        "--queries", type=Path, help="BEIR queries.jsonl (default: a built-in list)"
    )
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--mode", default="hybrid", choices=["dense", "bm25", "hybrid"])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--malformed-rounds", type=int, default=10, help="times each bad request is sent"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=600.0, help="stop sending after this long"
    )
    parser.add_argument("--client", choices=["httpx", "raw"], default="httpx",
                        help="httpx.AsyncClient, or a bare keep-alive HTTP/1.1 client (less of the CPU it shares)")
    parser.add_argument("--out", type=Path, default=RESULTS / "load_http")
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 200 and 1 <= args.requests <= 100_000):
        parser.error("--clients must be 1..200 and --requests 1..100000")
    return args


def load_queries(path: Path | None) -> list[str]:
    if path is None:
        return list(BUILTIN_QUERIES)
    with path.open(encoding="utf-8") as handle:
        queries = [json.loads(line)["text"] for line in handle if line.strip()]
    return [q for q in queries if q.strip()] or list(BUILTIN_QUERIES)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(index: Path, timeout: float = 180.0) -> Iterator[str]:
    """`fieldtune serve` in a child process on loopback; yields its URL and always stops it."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "fieldtune",
        "serve",
        "--index",
        str(index),
        "--port",
        str(port),
    ]
    env = {**os.environ, "FIELDTUNE_API_KEY": ""}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server exited with status {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"the server did not answer within {timeout:.0f}s")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def load(url: str, queries: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """``args.requests`` searches from ``args.clients`` concurrent clients.

    ``args.client`` (default ``httpx``): ``httpx`` sends them with an ``httpx.AsyncClient``; ``raw``
    with :func:`raw_get`, a bare keep-alive HTTP/1.1 client on asyncio streams, one connection per
    client. Both run on the server's machine; ``raw`` spends a fraction of httpx's CPU time a
    request, which on 2 shared cores is otherwise taken from the server being measured.
    """
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    counter = iter(range(args.requests))
    stop_at = time.monotonic() + args.max_seconds
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    raw = getattr(args, "client", "httpx") == "raw"

    async def client(http: httpx.AsyncClient) -> None:
        connection = None
        for n in counter:
            if time.monotonic() > stop_at:
                break
            params = {"q": queries[n % len(queries)], "k": str(args.k), "mode": args.mode}
            start = time.perf_counter()
            try:
                if raw:
                    connection = connection or await asyncio.open_connection(*_host_port(url))
                    status = await raw_get(connection, "/search?" + urlencode(params))
                else:
                    status = (await http.get("/search", params=params)).status_code
                statuses[str(status)] += 1
                if status == 200:
                    latencies.append((time.perf_counter() - start) * 1000)
            except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, ValueError) as error:
                statuses[type(error).__name__] += 1
                connection = _close(connection)
        _close(connection)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(args.clients)))
        wall = time.perf_counter() - start
    sent = sum(statuses.values())
    ordered = sorted(latencies)
    return {
        "requests": sent,
        "ok": len(latencies),
        "errors": sent - len(latencies),
        "statuses": dict(statuses),
        "wall_s": round(wall, 2),
        "requests_per_s": round(sent / wall, 1) if wall else None,
        "p50_ms": round(_percentile(ordered, 50), 1),
        "p99_ms": round(_percentile(ordered, 99), 1),
        "mean_ms": round(statistics.fmean(ordered), 1) if ordered else None,
        "max_ms": round(ordered[-1], 1) if ordered else None,
    }


async def raw_get(connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], target: str) -> int:
    """``GET target`` on a kept-alive connection; the response's status (its body is read and dropped).

    Reads exactly what HTTP/1.1 says: the head up to its blank line, then ``Content-Length`` bytes
    (every answer of the search service carries one); anything else is a ValueError.
    """
    reader, writer = connection
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode("ascii"))
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(":", 1) for line in header_lines if ":" in line)
    length = {name.strip().lower(): value.strip() for name, value in headers.items()}.get("content-length")
    if length is None:
        raise ValueError(f"no Content-Length in the answer ({status_line})")
    await reader.readexactly(int(length))
    return int(status_line.split(" ", 2)[1])


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _close(connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if connection is not None:
        connection[1].close()


async def malformed(url: str, rounds: int, clients: int) -> dict[str, Any]:
    """Every bad request ``rounds`` times, concurrently; each answer must be a 4xx."""
    by_case: dict[str, Counter[str]] = {name: Counter() for name, _ in MALFORMED}
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def send(name: str, params: dict[str, str]) -> None:
            try:
                response = await http.get("/search", params=params)
                by_case[name][str(response.status_code)] += 1
            except httpx.HTTPError as error:
                by_case[name][type(error).__name__] += 1

        await asyncio.gather(*(send(n, p) for _ in range(rounds) for n, p in MALFORMED))
    statuses = sum(by_case.values(), Counter())
    return {
        "requests": sum(statuses.values()),
        "statuses": dict(statuses),
        "by_case": {name: dict(counts) for name, counts in by_case.items()},
        "all_4xx": all(s.isdigit() and 400 <= int(s) < 500 for s in statuses),
        "server_errors": sum(n for s, n in statuses.items() if not s.isdigit() or int(s) >= 500),
    }


def _percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]  # nearest-rank percentile


def index_summary(url: str) -> dict[str, Any]:
    info = httpx.get(url + "/health", timeout=10).json()["index"]
    return {
        "path": info.get("path"),
        "source": info.get("source"),
        "model": info["model"].get("spec"),
        "documents": info["counts"]["documents"],
        "chunks": info["counts"]["chunks"],
        "dimension": info.get("dimension"),
        "storage": info.get("storage"),
        "ann_in_use": info.get("ann_in_use"),
    }


def to_markdown(result: dict[str, Any]) -> str:
    run, bad, idx, cfg = result["load"], result["malformed"], result["index"], result["config"]
    lines = [
        "# HTTP load test (`benchmarks/load_http.py`)",
        "",
        f"Index: {idx['documents']} documents, {idx['chunks']} chunks ({idx['source']}), "
        f"model {idx['model']}, {idx['dimension']} dimensions, {idx['storage']} storage.",
        f"{cfg['requests']} `GET /search` ({cfg['mode']}, k={cfg['k']}) from {cfg['clients']} "
        f"concurrent clients over loopback, {cfg['distinct_queries']} distinct queries "
        f"({cfg['queries']}); the client runs on the same machine.",
        "",
        "| requests | errors | req/s | p50 ms | p99 ms | mean ms | max ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {run['requests']} | {run['errors']} | {run['requests_per_s']} | {run['p50_ms']} "
        f"| {run['p99_ms']} | {run['mean_ms']} | {run['max_ms']} |",
        "",
        f"Malformed burst: {bad['requests']} requests, statuses {bad['statuses']}; "
        f"all 4xx: {'yes' if bad['all_4xx'] else 'NO'}; 5xx or failed: {bad['server_errors']}.",
        "",
        f"Hardware: {hardware_line(result['hardware'])}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    queries = load_queries(args.queries)
    with contextlib.ExitStack() as stack:
        index = args.index
        if index is None:
            from fieldtune.search import Index

            index = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "index"
            print(f"building an index of {args.corpus} with {args.model} ...", flush=True)
            Index.build(args.corpus, index, model=args.model, progress=True)
        url = stack.enter_context(running_server(index))
        print(
            f"server up at {url}; {args.requests} requests from {args.clients} clients", flush=True
        )
        summary = index_summary(url)
        run = asyncio.run(load(url, queries, args))
        bad = asyncio.run(malformed(url, args.malformed_rounds, args.clients))
    result = {
        "hardware": hardware(),
        "index": summary,
        "config": {
            "clients": args.clients,
            "requests": args.requests,
            "mode": args.mode,
            "k": args.k,
            "queries": str(args.queries) if args.queries else "built-in list",
            "distinct_queries": len(set(queries)),
            "max_seconds": args.max_seconds,
        },
        "load": run,
        "malformed": bad,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    markdown = to_markdown(result)
    args.out.with_suffix(".md").write_text(markdown, encoding="utf-8")
    print(markdown)
    return 0 if run["errors"] == 0 and bad["all_4xx"] else 1


if __name__ == "__main__":
    sys.exit(main())
