"""LLM plug-ins without a model: answer repair, answer checks, query parsing, options, and failing fast.

The plug-ins against a real local server (llama.cpp's, Gemma-3-270M) are in
tests/test_llm_server.py (slow).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from fieldtune.concepts import (
    EXTRACTORS,
    ConceptConfig,
    ConceptGraph,
    ExtractionCache,
    TermCandidate,
    build_graph,
    get_extractor,
    register_extractor,
)
from fieldtune.concepts.edges import stated_edges
from fieldtune.concepts.extractors import StatedFacts, StatedRelation, StatingExtractor
from fieldtune.concepts.llm import ANSWER_SCHEMA, KINDS, RELATIONS, LLMExtractor, build_prompt, check_answer
from fieldtune.config import BuildConfig, BuildConfigError
from fieldtune.llm import AnswerCache, LLMClient, LLMEndpoint, LLMEndpointError, read_object
from fieldtune.pseudo_queries import PSEUDO_QUERY_SOURCES, PseudoQueryConfig
from fieldtune.pseudo_queries.llm import NoEndpointError, parse_queries
from fieldtune.types import Chunk, Concept, EdgeType

TEXT = ("Semistandard tableaux generalize standard Young tableaux. The Kostka number counts semistandard "
        "tableaux of a given shape and weight.")


def _closed_port() -> int:
    """A local port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("answer", "expected", "repaired"), [
    ('{"concepts": [["a", "object", "x"]]}', {"concepts": [["a", "object", "x"]]}, False),
    ('Sure:\n```json\n{"a": [1, {"b": "c"}]}\n```\nDone.', {"a": [1, {"b": "c"}]}, False),
    ('{"concepts": [["a", "object", "x"], ["b", "meth', {"concepts": [["a", "object", "x"], ["b"]]}, True),
    ('{"concepts": [{"name": "a", "description": "cut sho', {"concepts": [{"name": "a"}]}, True),
    ('{"a": [1, 2,', {"a": [1, 2]}, True),
    ('{"a": 1,}', {"a": 1}, True),
    ('{"k": 1.5, "z": nul', {"k": 1.5}, True),
    ('{"concepts": [["x\\"y", "object"', {"concepts": [['x"y', "object"]]}, True),
    ("no JSON here", None, False),
])
def test_read_object_keeps_every_complete_value(answer: str, expected: dict | None, repaired: bool) -> None:
    result = read_object(answer)
    assert result.value == expected
    assert result.repaired is repaired


def test_check_answer_drops_made_up_names_and_counts_every_repair() -> None:
    answer = (
        '{"concepts": [["Kostka number", "quantity", "counts tableaux"], ["semistandard tableaux", "shape"], '
        '["hook length formula", "result", "not in the text"], [null, "object", "no name"], '
        '["kostka NUMBER", "quantity", "a repeat"], ["a very long name of five words", "object", "x"], '
        '{"name": "standard Young tableaux", "kind": "object", "description": "fillings"}], '
        '"relations": [["semistandard tableaux", "generalizes", "standard Young tableaux"], '
        '["Kostka number", "uses", "semistandard tableaux"], ["Kostka number", "extends", "Schur function"], '
        '["Kostka number", "generalizes"]]}'
    )
    checked = check_answer(TEXT, answer, max_words=4, max_concepts=12)
    # names as the chunk spells them, at their offsets ("semistandard tableaux" starts the first sentence)
    assert [(name, TEXT[start:start + len(name)]) for name, start, _, _ in checked.concepts] == [
        ("Kostka number", "Kostka number"), ("Semistandard tableaux", "Semistandard tableaux"),
        ("standard Young tableaux", "standard Young tableaux")]
    assert [kind for _, _, kind, _ in checked.concepts] == ["quantity", "other", "object"]
    assert checked.relations == [("semistandard tableaux", "generalizes", "standard Young tableaux")]
    assert dict(checked.counts) == {
        "repaired_json": 0, "dropped_not_in_chunk": 1, "dropped_no_name": 1, "dropped_duplicate_or_over_limit": 1,
        "dropped_too_long": 1, "repaired_kind": 1, "repaired_description": 1, "dropped_relation_type": 1,
        "dropped_relation_not_in_chunk": 1, "dropped_relation_incomplete": 1, "concepts_kept": 3,
        "relations_kept": 1}


def test_check_answer_reads_a_truncated_answer_and_counts_an_unreadable_one() -> None:
    truncated = '{"concepts": [["Kostka number", "quantity", "counts tableaux"], ["semistandard tab'
    checked = check_answer(TEXT, truncated, max_words=4, max_concepts=12)
    assert [c[0] for c in checked.concepts] == ["Kostka number"]
    assert checked.counts["repaired_json"] == 1 and checked.counts["dropped_no_name"] == 1
    nothing = check_answer(TEXT, "The text is about tableaux.", max_words=4, max_concepts=12)
    assert nothing.concepts == [] and nothing.counts["unreadable_answers"] == 1


def test_prompt_schema_and_relations_agree() -> None:
    prompt = build_prompt("  A text\nwith   spaces. ", max_chars=100)
    assert prompt.endswith("Text: A text with spaces.\nJSON:")
    assert prompt.startswith(build_prompt("", 100)[: -len("Text: \nJSON:")])  # one shared prefix for every chunk
    assert ANSWER_SCHEMA["properties"]["concepts"]["items"]["prefixItems"][1]["enum"] == list(KINDS)
    assert set(ANSWER_SCHEMA["properties"]["relations"]["items"]["prefixItems"][1]["enum"]) == set(RELATIONS)


def test_stated_relations_become_edges_between_concepts_by_any_spelling() -> None:
    concepts = [Concept("semistandard-tableau", "semistandard tableau", 1.0, aliases=("semistandard tableaux",)),
                Concept("young-tableau", "Young tableau", 1.0), Concept("kostka-number", "Kostka number", 1.0)]
    relations = [StatedRelation("semistandard tableaux", "Young tableaux", EdgeType.GENERALIZES, "c1"),
                 StatedRelation("Semistandard tableau", "young tableau", EdgeType.GENERALIZES, "c2"),
                 StatedRelation("Semistandard tableau", "young tableau", EdgeType.GENERALIZES, "c2"),
                 StatedRelation("Kostka number", "Schur function", EdgeType.EXTENDS, "c1")]
    edges = stated_edges(concepts, relations)
    assert [(e.source, e.target, e.type, e.weight) for e in edges] == [
        ("semistandard-tableau", "young-tableau", EdgeType.GENERALIZES, 2.0)]
    assert "first c1" in edges[0].evidence


def test_parse_queries_cleans_deduplicates_and_caps() -> None:
    config = PseudoQueryConfig(llm_queries_per_chunk=2)
    answer = (' "kostka number definition"\n2. Kostka Number definition\n3. x\n'
              "4. The Kostka number counts semistandard tableaux of a given shape and weight.\n"
              "5. count tableaux by shape and weight\n6. never reached")
    assert parse_queries(answer, TEXT, config) == ["kostka number definition", "count tableaux by shape and weight"]


def test_llm_options_fail_before_anything_runs() -> None:
    with pytest.raises(BuildConfigError, match="llm pseudo-query source needs an LLM endpoint.*--llm-url"):
        BuildConfig(pseudo_queries=("llm",))
    with pytest.raises(BuildConfigError, match="llm concept extractor needs an endpoint"):
        BuildConfig(concepts=ConceptConfig(extractor="llm"))
    with pytest.raises(BuildConfigError, match="LLM URL must look like"):
        BuildConfig(llm=LLMEndpoint("localhost:8080", "m"))
    with pytest.raises(ValueError, match="llm api must be one of completions, chat"):
        LLMEndpoint("http://h:1", "m", api="responses")
    with pytest.raises(NoEndpointError, match="--llm-url"):
        PSEUDO_QUERY_SOURCES["llm"].generate([], None, PseudoQueryConfig())
    endpoint = LLMEndpoint("http://127.0.0.1:8080/", "gemma")
    config = BuildConfig(llm=endpoint, pseudo_queries=("llm",), concepts=ConceptConfig(extractor="llm"))
    assert config.concepts.llm == endpoint and config.pseudo_query_config().llm == endpoint
    assert endpoint.base_url() == "http://127.0.0.1:8080/v1" == LLMEndpoint(endpoint.base_url(), "m").base_url()


def test_an_unreachable_endpoint_fails_fast_naming_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(LLMEndpointError, match=f"cannot reach the LLM endpoint {url}/v1"), \
            LLMClient(LLMEndpoint(url, "gemma")) as client:
        client.check()
    extractor = get_extractor("llm", ConceptConfig(extractor="llm", llm=LLMEndpoint(url, "gemma")))
    assert isinstance(extractor, StatingExtractor)
    chunks = [Chunk("d1#0", "d1", 0, TEXT, 0, len(TEXT), 30)]
    with pytest.raises(LLMEndpointError, match=url):
        extractor.extract(chunks, cache=ExtractionCache(tmp_path / "cache.jsonl"))
    with pytest.raises(LLMEndpointError, match=url):
        PSEUDO_QUERY_SOURCES["llm"].generate(chunks, None, PseudoQueryConfig(
            llm=LLMEndpoint(url, "gemma"), llm_cache=str(tmp_path / "q.jsonl")))
    assert time.monotonic() - started < 10


def test_a_chunk_without_a_usable_query_is_asked_again_with_the_answer_begun(tmp_path: Path) -> None:
    from fieldtune.pseudo_queries.llm import RETRY_PRIMER, _retry_key, parse_queries, query_cache_key

    url = f"http://127.0.0.1:{_closed_port()}"
    config = PseudoQueryConfig(llm=LLMEndpoint(url, "gemma"), llm_cache=str(tmp_path / "q.jsonl"))
    chunks = [Chunk("a#0", "a", 0, TEXT, 0, len(TEXT), 30), Chunk("b#0", "b", 0, "Banach spaces.", 0, 14, 3)]
    answered, empty = (query_cache_key(c.text, config) for c in chunks)
    cache = AnswerCache(tmp_path / "q.jsonl")
    cache.put_many({answered: ["kostka numbers"], empty: []})
    # the empty answer is not final: the primed question is asked, here of a closed port
    with pytest.raises(LLMEndpointError, match=url):
        PSEUDO_QUERY_SOURCES["llm"].generate(chunks, None, config)
    # the primer is part of the answer the model continues
    primed = parse_queries(RETRY_PRIMER + " is a Banach space?", "Banach spaces.", config)
    assert primed == ["What is a Banach space?"]
    cache.put_many({_retry_key(empty): primed})
    found = PSEUDO_QUERY_SOURCES["llm"].generate(chunks, None, config)  # every answer cached: no request
    assert [(c.group, c.query.text) for c in found] == [("a", "kostka numbers"), ("b", "What is a Banach space?")]


def test_answer_cache_survives_an_interrupted_write(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    AnswerCache(path).put_many({"a": ["q1"], "b": {"concepts": []}})
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"key": "c", "value": ["cut')
    cache = AnswerCache(path)
    assert cache.get("a") == ["q1"] and cache.get("b") == {"concepts": []} and cache.get("c") is None
    assert len(cache) == 2 and path.read_text(encoding="utf-8").endswith("}\n")


def test_cli_fails_fast_on_llm_options_and_an_unreachable_server(tmp_path: Path, capsys, monkeypatch) -> None:
    from tests.build_fixture import write_corpus
    from tests.conftest import run_cli

    corpus, out = write_corpus(tmp_path / "corpus.jsonl", n_docs=20), tmp_path / "out"
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    started = time.monotonic()
    code, _, err = run_cli(["build", str(corpus), "--out", str(out), "--llm-url", url, "--llm-model", "gemma"],
                           capsys, monkeypatch)
    assert code == 2 and f"cannot reach the LLM endpoint {url}" in err and "Traceback" not in err
    assert time.monotonic() - started < 10 and not out.exists()  # before ingest wrote anything
    for args, message in [
        (["--pseudo-queries", "llm"], "llm pseudo-query source needs an LLM endpoint"),
        (["--llm-model", "gemma"], "need --llm-url"),
        (["--llm-url", url], "needs --llm-model"),
        (["--llm-url", "127.0.0.1:8080", "--llm-model", "m"], "must look like"),
        (["--concept-extractor", "lmm"], "did you mean 'llm'"),
    ]:
        code, _, err = run_cli(["build", str(corpus), "--out", str(out), *args], capsys, monkeypatch)
        assert code == 2 and message in " ".join(err.split()), (args, err)


def test_python_api_takes_an_llm_and_checks_it_first(tmp_path: Path) -> None:
    import fieldtune
    from fieldtune.api import build_config

    config = build_config(llm={"url": "http://127.0.0.1:1/v1", "model": "gemma"}, extractor="llm",
                          pseudo_queries="titles,llm")
    assert config.concepts.extractor == "llm" and config.concepts.llm == config.llm == LLMEndpoint(
        "http://127.0.0.1:1/v1", "gemma")
    with pytest.raises(BuildConfigError, match="llm: .*unexpected keyword argument 'modle'"):
        build_config(llm={"url": "http://127.0.0.1:1", "modle": "gemma"})
    with pytest.raises(BuildConfigError, match="llm must be an LLMEndpoint or a dict with url and model"):
        build_config(llm="http://127.0.0.1:1")
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(LLMEndpointError, match=url):
        fieldtune.build(tmp_path / "missing.jsonl", out=tmp_path / "out", llm=LLMEndpoint(url, "gemma"))


def test_the_card_says_an_llm_read_the_concepts(tmp_path: Path) -> None:
    from fieldtune.card import render_card
    from fieldtune.concepts import read_graph
    from tests.test_card import card_config, training_record, write_build

    write_build(tmp_path, training_record(), None)
    offline = render_card(tmp_path, corpus="corpus.jsonl", config=card_config())
    graph = read_graph(tmp_path)
    graph.config = {"extractor": "llm", "llm": {"url": "http://127.0.0.1:8080/v1", "model": "gemma-3-270m"}}
    graph.kinds = {"hall-algebra": "object"}
    graph.write(tmp_path)
    assert read_graph(tmp_path).kinds == {"hall-algebra": "object"}
    card = render_card(tmp_path, corpus="corpus.jsonl", config=card_config())
    assert "read from the corpus by an LLM (gemma-3-270m" in card and "read from the corpus by an LLM" not in offline
    assert "extracted offline from the corpus" in offline and "extracted offline" not in card


class _StatingExtractor:
    """A stand-in for an extractor that states relations (the interface build_graph reads, no model behind it)."""

    name = "stating-test"

    def __init__(self) -> None:
        self._facts = StatedFacts()

    def extract(self, chunks, *, cache=None, progress=True):
        names = ("Hall algebra", "quantum group", "Kostka number")
        found = [TermCandidate(name, chunk.id, chunk.text.find(name)) for chunk in chunks for name in names
                 if name in chunk.text]
        self._facts = StatedFacts(
            [StatedRelation("Hall algebras", "quantum groups", EdgeType.GENERALIZES, chunks[0].id),
             StatedRelation("Kostka number", "Schur function", EdgeType.EXTENDS, chunks[0].id)],
            {"hall algebra": "object", "kostka number": "quantity"}, {"concepts_kept": len(found)})
        return found

    def stated(self) -> StatedFacts:
        return self._facts


if "stating-test" not in EXTRACTORS:
    register_extractor("stating-test", lambda config: _StatingExtractor())


def test_build_graph_turns_stated_relations_and_kinds_into_edges_and_kinds() -> None:
    texts = ["The Hall algebra of a category maps onto a quantum group. The Kostka number appears.",
             "Every Hall algebra here is graded; the quantum group acts. A Kostka number counts tableaux."]
    chunks = [Chunk(f"d{i}#0", f"d{i}", 0, text, 0, len(text), 20) for i, text in enumerate(texts)]
    graph = build_graph(chunks, config=ConceptConfig(min_df=1, max_df=1.0), extractor="stating-test", progress=False)
    ids = {c.name.casefold(): c.id for c in graph.concepts}
    stated = [(e.source, e.target, e.type) for e in graph.edges if e.type is EdgeType.GENERALIZES]
    assert stated == [(ids["hall algebra"], ids["quantum group"], EdgeType.GENERALIZES)]
    assert not [e for e in graph.edges if e.type is EdgeType.EXTENDS]  # "Schur function" is no concept here
    assert graph.kinds == {ids["hall algebra"]: "object", ids["kostka number"]: "quantity"}
    assert graph.stats["kinds"] == {"object": 1, "quantity": 1} and graph.stats["extractor"] == {"concepts_kept": 6}
    assert ConceptGraph.from_dict(json.loads(graph.to_json())).kinds == graph.kinds


def test_the_llm_extractor_keeps_a_concept_named_once_unless_min_df_is_set() -> None:
    config = ConceptConfig(extractor="llm", llm=LLMEndpoint("http://127.0.0.1:1", "gemma"))
    assert (ConceptConfig().doc_floor(), config.doc_floor(), ConceptConfig().doc_floor("llm")) == (2, 1, 1)
    assert ConceptConfig(min_df=3, extractor="llm", llm=config.llm).doc_floor() == 3
    with pytest.raises(ValueError, match="min_df must be at least 1"):
        ConceptConfig(min_df=0).validate()


def _answered(tmp_path: Path, endpoint: LLMEndpoint, answers: dict[str, str]) -> None:
    """Cache the model's answers for each chunk text, as an earlier run would have (no server is asked)."""
    extractor = LLMExtractor(endpoint)
    terms, facts = ExtractionCache(tmp_path / "extraction-cache.jsonl"), AnswerCache(tmp_path / "llm-answers.jsonl")
    for text, answer in answers.items():
        checked = check_answer(text, answer, max_words=extractor.max_words, max_concepts=extractor.max_concepts)
        key = ExtractionCache.make_key("llm", extractor.config_hash(), text)
        facts.put_many({key: checked.to_json()})
        terms.put_many({key: [(name, start, description) for name, start, _, description in checked.concepts]})


def test_llm_graph_uses_a_floor_of_one_document_and_plural_mentions_meet(tmp_path: Path) -> None:
    texts = ["The Hall algebra of a category maps onto a quantum group of the same type.",
             "Hall algebras are graded. A Kostka number counts semistandard tableaux of a shape."]
    endpoint = LLMEndpoint(f"http://127.0.0.1:{_closed_port()}", "gemma")  # every answer is cached: never asked
    _answered(tmp_path, endpoint, {
        texts[0]: '{"concepts": [["Hall algebra", "object", "an algebra"], ["quantum group", "object", "a group"]]}',
        texts[1]: '{"concepts": [["Hall algebras", "object", "algebras"], ["Kostka number", "quantity", "a count"]]}',
    })
    chunks = [Chunk(f"d{i}#0", f"d{i}", 0, text, 0, len(text), 20) for i, text in enumerate(texts)]
    default = build_graph(chunks, config=ConceptConfig(extractor="llm", llm=endpoint, max_df=1.0), cache_dir=tmp_path,
                          progress=False)
    assert sorted(c.name.casefold() for c in default.concepts) == ["hall algebra", "kostka number", "quantum group"]
    assert default.config["min_df"] == 1 and default.stats["extractor"]["chunks_from_cache"] == 2
    floor_two = build_graph(chunks, config=ConceptConfig(extractor="llm", llm=endpoint, max_df=1.0, min_df=2),
                            cache_dir=tmp_path, progress=False)
    assert [c.name.casefold() for c in floor_two.concepts] == ["hall algebra"]  # its plural in d1 met it
    assert floor_two.config["min_df"] == 2
