"""LangChain and LlamaIndex retrievers over a real tiny index (the bundled model, offline, ~20 s).

Each test compares a retriever with ``Index.search`` itself for the same options: same ids, same
order, same scores. A framework that is not installed skips its tests with the extra to install.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import re
import shutil
import sys
from pathlib import Path

import pytest

from fieldtune.errors import MissingExtraError
from fieldtune.search import Index, SearchOptionError
from fieldtune.types import Document
from tests.conftest import build_tiny_index

#: (id, title, topic, year, text): topics mixed so that a filter changes the top k.
CORPUS = [
    ("volcano", "Volcanoes", "earth", 2019,
     "Magma rising through the crust erupts as lava, ash and gas from a volcano."),
    ("glacier", "Glaciers", "earth", 2021,
     "Glaciers are slow rivers of ice that carve valleys as they flow downhill."),
    ("tides", "Ocean tides", "earth", 2022,
     "Tides are the rise and fall of sea levels caused by the pull of the moon."),
    ("quake", "Earthquakes", "earth", 2023,
     "Earthquakes shake the ground when faults in the crust slip suddenly."),
    ("bread", "Sourdough", "food", 2020,
     "Sourdough bread is leavened by a starter of wild yeast and lactic acid bacteria."),
    ("coffee", "Coffee roasting", "food", 2021,
     "Roasting coffee beans drives the Maillard reaction: aroma and brown colour."),
    ("cheese", "Cheese", "food", 2022,
     "Cheese is milk curdled by rennet, pressed and aged until firm."),
    ("bees", "Honey bees", "life", 2018,
     "Honey bees tell hive mates the direction of flowers with a waggle dance."),
    ("vaccine", "Vaccines", "life", 2023,
     "A vaccine trains the immune system to recognise a pathogen by a harmless antigen."),
    ("sorting", "Quicksort", "code", 2020,
     "Quicksort partitions an array around a pivot and sorts both parts recursively."),
]
README = Path(__file__).resolve().parents[1] / "README.md"
QUERIES = ["lava and ash from a volcano", "ice and rock in the mountains", "baking with yeast", "how insects talk"]
MODES = ["dense", "bm25", "hybrid"]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    documents = [
        Document(id=i, title=t, text=x, metadata={"topic": topic, "year": year, "concepts": [t.lower()]})
        for i, t, topic, year, x in CORPUS
    ]
    return build_tiny_index(tmp_path_factory, documents, "integrations")


@pytest.fixture(scope="module")
def langchain_retriever() -> type:
    pytest.importorskip("langchain_core", reason="the LangChain retriever needs: pip install 'fieldtune[langchain]'")
    from fieldtune.integrations.langchain import FieldtuneRetriever

    return FieldtuneRetriever


@pytest.fixture(scope="module")
def llamaindex_retriever() -> type:
    pytest.importorskip(
        "llama_index.core", reason="the LlamaIndex retriever needs: pip install 'fieldtune[llamaindex]'"
    )
    from fieldtune.integrations.llamaindex import FieldtuneRetriever

    return FieldtuneRetriever


def expected(index: Index, query: str, **options) -> list[tuple[str, float]]:
    return [(hit.doc_id, hit.score) for hit in index.search(query, **options)]


def ids(index: Index, query: str, **options) -> list[str]:
    return [hit.doc_id for hit in index.search(query, **options)]


# -- LangChain -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_langchain_returns_fieldtunes_top_k(index: Index, langchain_retriever: type, mode: str) -> None:
    from langchain_core.documents import Document as LangChainDocument

    retriever = langchain_retriever(index, k=4, mode=mode)
    for query in QUERIES:
        got = retriever.invoke(query)
        assert all(isinstance(doc, LangChainDocument) for doc in got)
        assert [(d.metadata["doc_id"], d.metadata["score"]) for d in got] == expected(index, query, k=4, mode=mode)
        assert [d.id for d in got] == [d.metadata["doc_id"] for d in got]
        assert [d.metadata["rank"] for d in got] == list(range(1, len(got) + 1))
        assert len(got) == 4 or mode == "bm25"  # BM25 returns only the documents sharing a word with the query


def test_langchain_document_fields(index: Index, langchain_retriever: type) -> None:
    top = langchain_retriever(index, k=1, mode="bm25").invoke("honey bees waggle dance")[0]
    hit = index.search("honey bees waggle dance", k=1, mode="bm25")[0]
    assert top.page_content == hit.passage and "waggle dance" in top.page_content
    assert top.metadata == {
        "doc_id": "bees", "chunk_id": hit.chunk_id, "score": hit.score, "rank": 1, "title": "Honey bees",
        "concepts": ["honey bees"], "chunk_concepts": [],
    }


def test_langchain_honours_k_filters_and_overrides(index: Index, langchain_retriever: type) -> None:
    query = "the crust of the earth and baking bread"
    unfiltered = [d.metadata["doc_id"] for d in langchain_retriever(index, k=6).invoke(query)]
    topics = {doc_id: topic for doc_id, _, topic, _, _ in CORPUS}
    assert {topics[d] for d in unfiltered} != {"food"}  # so the filter below has something to remove
    food = langchain_retriever(index, k=6, filters={"topic": "food"}).invoke(query)
    assert [d.metadata["doc_id"] for d in food] == ids(index, query, k=6, filters={"topic": "food"})
    assert {topics[d.metadata["doc_id"]] for d in food} == {"food"} and len(food) == 3
    retriever = langchain_retriever(index, k=6)
    assert len(retriever.invoke(query, k=2)) == 2  # per-call override
    recent = retriever.invoke(query, filters=["year>=2022"])
    assert [d.metadata["doc_id"] for d in recent] == ids(index, query, k=6, filters=["year>=2022"])
    assert len(retriever.invoke(query)) == 6  # the override did not stick


def test_langchain_chunks_batch_and_async(index: Index, langchain_retriever: type) -> None:
    retriever = langchain_retriever(index, k=3, chunks=True, mode="dense")
    got = retriever.batch(QUERIES[:2])
    for query, docs in zip(QUERIES[:2], got, strict=True):
        hits = index.search(query, k=3, mode="dense", documents=False)
        assert [d.id for d in docs] == [h.chunk_id for h in hits]
    later = asyncio.run(retriever.ainvoke(QUERIES[0], k=2))  # LangChain's async path runs the same search
    assert [d.id for d in later] == [h.chunk_id for h in index.search(QUERIES[0], k=2, mode="dense", documents=False)]


def test_langchain_opens_a_path_and_rejects_bad_options(index: Index, langchain_retriever: type) -> None:
    by_path = langchain_retriever(str(index.root), k=3, mode="bm25")
    assert [d.metadata["doc_id"] for d in by_path.invoke(QUERIES[0])] == ids(index, QUERIES[0], k=3, mode="bm25")
    for options, message in [({"k": 0}, "k must be"), ({"mode": "fuzzy"}, "mode must be one of"),
                             ({"dim": 7}, "dim must be one of"), ({"filters": ["year >>= 3"]}, "bad filter")]:
        with pytest.raises(SearchOptionError, match=message):
            langchain_retriever(index, **options)
    with pytest.raises(SearchOptionError, match="mode must be one of"):
        langchain_retriever(index).invoke(QUERIES[0], mode="fuzzy")


# -- LlamaIndex ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_llamaindex_returns_fieldtunes_top_k(index: Index, llamaindex_retriever: type, mode: str) -> None:
    from llama_index.core.schema import NodeWithScore

    retriever = llamaindex_retriever(index, k=4, mode=mode)
    for query in QUERIES:
        got = retriever.retrieve(query)
        assert all(isinstance(node, NodeWithScore) for node in got)
        assert [(n.node.ref_doc_id, n.score) for n in got] == expected(index, query, k=4, mode=mode)


def test_llamaindex_node_fields(index: Index, llamaindex_retriever: type) -> None:
    from llama_index.core.schema import MetadataMode, QueryBundle

    top = llamaindex_retriever(index, k=1, mode="bm25").retrieve(QueryBundle("honey bees waggle dance"))[0]
    hit = index.search("honey bees waggle dance", k=1, mode="bm25")[0]
    assert top.node.node_id == hit.chunk_id and top.node.get_content() == hit.passage
    assert top.node.metadata["title"] == "Honey bees" and top.node.metadata["concepts"] == ["honey bees"]
    shown = top.node.get_content(metadata_mode=MetadataMode.LLM)
    assert "Honey bees" in shown and hit.passage in shown and hit.chunk_id not in shown


def test_llamaindex_honours_k_and_filters(index: Index, llamaindex_retriever: type) -> None:
    query = "the crust of the earth and baking bread"
    assert len(llamaindex_retriever(index, k=2).retrieve(query)) == 2
    later = asyncio.run(llamaindex_retriever(index, k=2).aretrieve(query))
    assert [n.node.ref_doc_id for n in later] == ids(index, query, k=2)
    for filters in ({"topic": "food"}, ["year>=2022", "topic!=earth"]):
        got = llamaindex_retriever(index, k=6, filters=filters).retrieve(query)
        assert [n.node.ref_doc_id for n in got] == ids(index, query, k=6, filters=filters)
    recent_not_earth = {doc_id for doc_id, _, topic, year, _ in CORPUS if year >= 2022 and topic != "earth"}
    assert {n.node.ref_doc_id for n in got} == recent_not_earth and len(got) == len(recent_not_earth)
    with pytest.raises(SearchOptionError, match="mode must be one of"):
        llamaindex_retriever(index, mode="fuzzy")


def test_llamaindex_query_engine_answers_from_fieldtunes_hits(index: Index, llamaindex_retriever: type) -> None:
    """A query engine built on the retriever cites fieldtune's top k (LlamaIndex's offline MockLLM answers)."""
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    engine = RetrieverQueryEngine.from_args(llamaindex_retriever(index, k=3), llm=MockLLM())
    response = engine.query(QUERIES[0])
    assert [n.node.ref_doc_id for n in response.source_nodes] == ids(index, QUERIES[0], k=3)


# -- the README's examples -------------------------------------------------------------------------


def readme_example(mark: str) -> str:
    """The Python block after ``<!-- {mark}`` in README.md."""
    found = re.search(rf"<!-- {mark}.*?-->\s*```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert found, f"README.md has no ```python block after <!-- {mark}"
    return found.group(1)


@pytest.mark.parametrize("framework", ["langchain", "llamaindex"])
def test_the_readme_examples_run(index: Index, request, tmp_path: Path, monkeypatch, framework: str) -> None:
    request.getfixturevalue(f"{framework}_retriever")  # skips when the framework is not installed
    code = readme_example(f"{framework}-example")
    query = re.search(r'(?:invoke|retrieve)\("([^"]+)"\)', code).group(1)
    shutil.copytree(index.root, tmp_path / "idx")
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"README.md ({framework} example)", "exec"), {})
    filters = ["year>=2020"] if "filters=" in code else None
    wanted = ids(index, query, k=4, mode="hybrid", filters=filters)
    # each example prints one line per hit with the document id second ("rank doc_id ..." / "score doc_id ...")
    assert [line.split()[1] for line in printed.getvalue().splitlines()] == wanted


# -- a framework that is missing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "framework", "extra"),
    [("fieldtune.integrations.langchain", "langchain_core", "langchain"),
     ("fieldtune.integrations.llamaindex", "llama_index", "llamaindex")],
)
def test_a_missing_framework_names_its_extra(monkeypatch, module: str, framework: str, extra: str) -> None:
    for name in [m for m in sys.modules if m == module or m.split(".")[0] == framework]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, framework, None)  # what Python does for a package that is not installed
    with pytest.raises(MissingExtraError, match=rf"pip install 'fieldtune\[{extra}\]'"):
        importlib.import_module(module)
