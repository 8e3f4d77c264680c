"""The concept graph behind an index: hits carry their chunk's concepts, ``/concepts`` finds and shows them.

The graph is a real one: the concepts stage of a build over the synthetic corpus
(:mod:`tests.build_fixture`), served by a real uvicorn server over a real index
of the same corpus.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install 'fieldtune[serve]'")
httpx = pytest.importorskip("httpx")

from fieldtune.concepts.graph import GRAPH_JSON, ConceptGraph, read_graph  # noqa: E402
from fieldtune.search import Index  # noqa: E402
from fieldtune.search.concepts_view import MAX_HIT_CONCEPTS, locate_graph  # noqa: E402
from fieldtune.search.manifest import IndexedModel  # noqa: E402
from fieldtune.search.service import create_app, serve_in_background  # noqa: E402
from tests.build_fixture import write_corpus  # noqa: E402

KEY = "concept-key"


def build_concept_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Index, ConceptGraph, Path]:
    """A build's concepts stage and an index of the same corpus, with the graph copied into the index.

    Returns the index, the graph, and the build directory (whose ``graph.json`` it is).
    """
    from fieldtune.build import BuildConfig, run_build

    root = tmp_path_factory.mktemp("concept-index")
    corpus = write_corpus(root / "corpus.jsonl")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDTUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))  # the session's private cache
        run_build(corpus, root / "build", BuildConfig(), until="concepts")
        index = Index.build(corpus, root / "index", model="minilm", max_tokens=64, overlap=8, progress=False)
    shutil.copy(root / "build" / GRAPH_JSON, root / "index" / GRAPH_JSON)
    index.search("warm up", k=1, mode="dense")  # load the model before a request asks
    return index, read_graph(root / "build"), root / "build"


@pytest.fixture(scope="module")
def concept_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Index, ConceptGraph, Path]:
    return build_concept_index(tmp_path_factory)


@pytest.fixture(scope="module")
def url(concept_index) -> Iterator[str]:
    with serve_in_background(create_app(concept_index[0])) as base:
        yield base


def _named_in(text: str, graph: ConceptGraph) -> list[str]:
    """Ids of the graph's concepts whose name or an alias is a run of whole words of ``text``, best first."""
    words = re.findall(r"\w+", text.lower())

    def occurs(form: str) -> bool:
        phrase = re.findall(r"\w+", form.lower())
        return bool(phrase) and any(words[i : i + len(phrase)] == phrase for i in range(len(words)))

    return [c.id for c in graph.concepts if any(occurs(form) for form in (c.name, *c.aliases))]


def test_hits_carry_the_concepts_named_in_their_passage(url: str, concept_index) -> None:
    _, graph, _ = concept_index
    names = {c.id: c.name for c in graph.concepts}
    for query in ("Kostka polynomial charge", "complete inner product space", "graph edges chosen independently"):
        body = httpx.get(f"{url}/search", params={"q": query, "k": 5}).json()
        assert body["results"]
        for hit in body["results"]:
            expected = _named_in(hit["passage"], graph)
            # "Hall algebra" also contains "algebra": the longest phrase is matched, so a shorter concept
            # inside it may be left out; every concept carried is named in the passage, best first.
            carried = [c["id"] for c in hit["chunk_concepts"]]
            assert carried and set(carried) <= set(expected)
            assert carried == sorted(carried, key=[c.id for c in graph.concepts].index)
            assert len(carried) <= MAX_HIT_CONCEPTS
            assert all(c["name"] == names[c["id"]] for c in hit["chunk_concepts"])
    top = httpx.get(f"{url}/search", params={"q": "Kostka polynomial", "k": 1}).json()["results"][0]
    assert "Kostka polynomial" in [c["name"] for c in top["chunk_concepts"]]


def test_find_concepts_by_name_prefix_and_words(url: str, concept_index) -> None:
    _, graph, _ = concept_index
    best = graph.concepts[0]
    exact = httpx.get(f"{url}/concepts", params={"q": best.name.upper()}).json()
    assert exact["total"] == len(graph.concepts) and exact["concepts"][0]["id"] == best.id
    found = httpx.get(f"{url}/concepts", params={"q": "hall", "k": 50}).json()["concepts"]
    assert found and all("hall" in (c["name"] + " ".join(c["aliases"]) + c["description"]).lower() for c in found)
    named = [c for c in found if c["name"].lower().startswith("hall")]
    assert found[: len(named)] == named  # names that start with the query come before description matches
    listed = httpx.get(f"{url}/concepts", params={"k": 3}).json()["concepts"]
    assert [c["id"] for c in listed] == [c.id for c in graph.concepts[:3]]  # blank: the best concepts


def test_one_concept_with_neighbours_by_edge_type_and_documents(url: str, concept_index) -> None:
    index, graph, _ = concept_index
    concept = next(c for c in graph.concepts if c.name == "Hall algebra")
    body = httpx.get(f"{url}/concepts/{concept.id}").json()
    assert body["name"] == concept.name and body["description"] == concept.description
    expected: dict[str, set[tuple[str, str]]] = {}
    for edge in graph.edges:
        if concept.id in (edge.source, edge.target):
            other, direction = (edge.target, "out") if edge.source == concept.id else (edge.source, "in")
            expected.setdefault(edge.type.value, set()).add((other, direction))
    assert expected, "the fixture's Hall algebra has neighbours"
    got = {kind: {(n["id"], n["direction"]) for n in group} for kind, group in body["neighbours"].items()}
    assert got == expected
    assert [d["id"] for d in body["document_list"]] == list(concept.doc_ids)
    assert all(d["in_index"] and d["title"] == index.document(d["id"]).title for d in body["document_list"])

    missing = httpx.get(f"{url}/concepts/no-such-concept")
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_concept"
    assert "no-such-concept" in missing.json()["message"]


def test_health_says_the_graph_is_there(url: str, concept_index) -> None:
    _, graph, _ = concept_index
    concepts = httpx.get(f"{url}/health").json()["index"]["concepts"]
    assert concepts["count"] == len(graph.concepts) and concepts["graph"].endswith(GRAPH_JSON)


def test_concepts_sit_behind_the_api_key(concept_index) -> None:
    with serve_in_background(create_app(concept_index[0], api_key=KEY)) as base:
        assert httpx.get(f"{base}/concepts", params={"q": "hall"}).status_code == 401
        assert httpx.get(f"{base}/concepts/hall-algebra").status_code == 401
        answer = httpx.get(f"{base}/concepts/hall-algebra", headers={"X-API-Key": KEY})
        assert answer.status_code == 200 and answer.json()["id"] == "hall-algebra"


def test_the_graph_of_the_build_whose_model_encoded_the_index_is_found(concept_index) -> None:
    index, _, build = concept_index
    built = dataclasses.replace(index.manifest, model=IndexedModel("out/model", str(build / "model"), "local"))
    elsewhere = index.root.parent / "no-graph-here"
    assert locate_graph(index.root, built) == index.root / GRAPH_JSON  # a graph in the index comes first
    assert locate_graph(elsewhere, built) == build / GRAPH_JSON  # else the model's build
    assert locate_graph(elsewhere, index.manifest) is None  # a bundled model has no build


def test_an_index_without_a_graph_has_no_concepts(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.test_service import service_documents

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDTUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))  # the session's private cache
        index = Index.build(service_documents(), tmp_path_factory.mktemp("plain") / "i", model="minilm",
                            max_tokens=64, overlap=8, progress=False)
    with serve_in_background(create_app(index)) as base:
        answer = httpx.get(f"{base}/concepts", params={"q": "bees"})
        assert answer.status_code == 404 and answer.json()["error"] == "no_concept_graph"
        assert httpx.get(f"{base}/concepts/bees").json()["error"] == "no_concept_graph"
        hit = httpx.get(f"{base}/search", params={"q": "honey bees", "k": 1, "mode": "bm25"}).json()["results"][0]
        assert hit["chunk_concepts"] == [] and hit["concepts"] == ["honey bees"]
        assert httpx.get(f"{base}/health").json()["index"]["concepts"] is None


def test_a_damaged_graph_is_named_by_the_api_and_searches_go_on(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.test_service import service_documents

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDTUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))  # the session's private cache
        index = Index.build(service_documents(), tmp_path_factory.mktemp("damaged") / "i", model="minilm",
                            max_tokens=64, overlap=8, progress=False)
    bad = index.root / GRAPH_JSON
    bad.write_text("{not json", encoding="utf-8")
    with serve_in_background(create_app(index)) as base:
        answer = httpx.get(f"{base}/concepts", params={"q": "bees"})
        assert answer.status_code == 503 and answer.json()["error"] == "concept_graph_unreadable"
        assert str(bad) in answer.json()["message"]
        hits = httpx.get(f"{base}/search", params={"q": "honey bees", "k": 1, "mode": "bm25"})
        assert hits.status_code == 200 and hits.json()["results"][0]["chunk_concepts"] == []


def test_the_command_line_shows_a_hits_graph_concepts(concept_index, capsys, monkeypatch) -> None:
    from tests.conftest import run_cli

    index, _, _ = concept_index
    code, out, _ = run_cli(["search", "Kostka polynomial", "--index", str(index.root), "--k", "1", "--mode", "bm25"],
                           capsys, monkeypatch)
    assert code == 0
    line = next(line for line in out.splitlines() if "graph concepts:" in line)
    shown = line.split("graph concepts:", 1)[1].strip().split(", ")
    assert "Kostka polynomial" in shown
    top = index.search("Kostka polynomial", k=1, mode="bm25")[0]
    assert shown == [c.name for c in top.chunk_concepts]


def test_concepts_in_a_text_take_the_longest_name_whole_words_and_the_best_first() -> None:
    from fieldtune.search.concepts_view import ConceptCatalog
    from fieldtune.types import Concept

    concepts = [Concept("algebra", "algebra", 3.0),
                Concept("hall-algebra", "Hall algebra", 2.0, aliases=("Hall algebras",)),
                Concept("ring", "ring", 1.0), Concept("hall", "Hall", 0.5)]
    catalog = ConceptCatalog(ConceptGraph(concepts, []))
    assert [c.id for c in catalog.in_text("On HALL-ALGEBRAS and a ring.")] == ["hall-algebra", "ring"]
    assert [c.id for c in catalog.in_text("a string of algebra; the hall")] == ["algebra", "hall"]  # not "ring"
    assert catalog.in_text("nothing here") == [] and catalog.in_text("") == []
    assert [c.id for c in catalog.in_text("ring, Hall algebra, algebra", limit=2)] == ["algebra", "hall-algebra"]


def test_bad_concept_requests_are_4xx(url: str) -> None:
    for params in ({"k": 0}, {"k": "many"}, {"k": 10**6}):
        answer = httpx.get(f"{url}/concepts", params=params)
        assert answer.status_code == 422 and answer.json()["parameter"] == "k"
    odd = httpx.get(f"{url}/concepts", params={"q": "<script>" + "x" * 900})
    assert odd.status_code == 200 and odd.json()["concepts"] == []
    assert httpx.get(f"{url}/concepts/%00%ff").status_code == 404
