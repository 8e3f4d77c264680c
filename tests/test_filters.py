"""Metadata filters applied before ranking: parsing, semantics, the local index (exact and usearch
backends, BM25, hybrid), the CLI and HTTP. One real index of 60 synthetic abstracts (bundled model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fieldtune.search import Index
from fieldtune.search.filters import Filter, FilterError, MetadataColumns, Operator, parse_filters
from tests.build_fixture import synthetic_corpus
from tests.conftest import build_tiny_index, run_cli

CATEGORIES = ["math.CO", "math.RT", "math.PR"]
MODES = ["dense", "bm25", "hybrid"]


def metadata_of(i: int) -> dict:
    """Year 2000..2019 and one of three categories; every fifth document also has a tag list."""
    record = {"year": 2000 + i % 20, "category": CATEGORIES[i % 3]}
    if i % 5 == 0:
        record["tags"] = ["survey", f"t{i % 2}"]
    return record


def corpus_records() -> list[dict]:
    return [{**doc, **metadata_of(i)} for i, doc in enumerate(synthetic_corpus(60, seed=3))]


def documents():
    from fieldtune.types import Document

    return [
        Document(id=r["_id"], title=r["title"], text=r["text"], metadata={k: r[k] for k in r if k not in
                 ("_id", "title", "text")})
        for r in corpus_records()
    ]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    return build_tiny_index(tmp_path_factory, documents(), "filters")


def passes(doc_id: str, filters: list[str]) -> bool:
    meta = {d.id: d.metadata for d in documents()}[doc_id]
    return all(f.matches(meta.get(f.field)) for f in parse_filters(filters))


# -- parsing and semantics ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "op", "values"),
    [
        ("year>=2020", "year", Operator.GE, ("2020",)),
        (" category = math.CO ", "category", Operator.EQ, ("math.CO",)),
        ("lang in en, fr", "lang", Operator.IN, ("en", "fr")),
        ("lang in (en,fr)", "lang", Operator.IN, ("en", "fr")),
        ("x != 'a b'", "x", Operator.NE, ("a b",)),
        ("y==3", "y", Operator.EQ, ("3",)),
        ("date<2021-05-01", "date", Operator.LT, ("2021-05-01",)),
    ],
)
def test_parse(text: str, field: str, op: Operator, values: tuple) -> None:
    parsed = Filter.parse(text)
    assert (parsed.field, parsed.op, parsed.values) == (field, op, values)
    assert Filter.parse(str(parsed)) == parsed


@pytest.mark.parametrize("text", ["year>>2020", "=3", "year>=", "1year=3", "year in", "year", "", "year=>3"])
def test_bad_expressions_raise_a_filter_error_that_shows_the_syntax(text: str) -> None:
    with pytest.raises(FilterError, match="bad filter"):
        Filter.parse(text)


def test_mapping_and_objects_are_accepted_too() -> None:
    assert parse_filters({"category": "math.CO", "year": [2001, 2002]}) == (
        Filter("category", Operator.EQ, ("math.CO",)),
        Filter("year", Operator.IN, ("2001", "2002")),
    )
    assert parse_filters(None) == () == parse_filters([])
    with pytest.raises(FilterError):
        parse_filters({"category": {"nested": 1}})


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("year>=2020", 2020, True),
        ("year>=2020", "2021", True),  # a numeric string compares as a number (CSV columns)
        ("year>=2020", 2019.5, False),
        ("year>=2020", "n/a", False),  # not a number: an ordering against a number skips it
        ("year>=2020", None, False),
        ("year>=2020", True, False),
        ("year>=2020", [2010, 2022], True),  # a list matches if an element does
        ("year=2020", 2020.0, True),
        ("year=2020", "2020", True),
        ("category=math.CO", ["math.AG", "math.CO"], True),
        ("category!=math.CO", ["math.AG", "math.CO"], False),
        ("category!=math.CO", "math.AG", True),
        ("category!=math.CO", None, False),  # a missing field never matches, not even !=
        ("category!=math.CO", {"a": 1}, False),
        ("open=true", True, True),
        ("date<2021-05-01", "2020-12-31", True),  # text compares in code-point order
        ("date<2021-05-01", "2021-05-02", False),
        ("lang in en,fr", "fr", True),
        ("lang in en,fr", "de", False),
    ],
)
def test_matches(text: str, value: object, expected: bool) -> None:
    assert Filter.parse(text).matches(value) is expected


def test_metadata_columns_mask_every_filter() -> None:
    columns = MetadataColumns([{"year": 2020, "c": "a"}, {"year": 2010}, {}, {"c": ["a", "b"]}])
    assert columns.fields == ["c", "year"]
    assert columns.mask(parse_filters(["year>=2015"])).tolist() == [True, False, False, False]
    assert columns.mask(parse_filters(["c=a"])).tolist() == [True, False, False, True]
    assert columns.mask(parse_filters(["c=a", "year>2000"])).tolist() == [True, False, False, False]
    assert columns.mask(parse_filters(["missing=1"])).tolist() == [False] * 4


# -- the local index ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_filters_are_applied_before_ranking(index: Index, mode: str) -> None:
    """Filtered top-k == the unfiltered ranking restricted to matching documents (not a post-filter)."""
    query = "Hall algebra of finite modules"
    filters = ["year>=2010", "category=math.RT"]
    matching = [d.id for d in documents() if passes(d.id, filters)]
    assert 0 < len(matching) < 20
    full = [r.doc_id for r in index.search(query, k=1000, mode=mode)]
    filtered = [r.doc_id for r in index.search(query, k=5, mode=mode, filters=filters)]
    assert all(passes(doc, filters) for doc in filtered)
    if mode == "dense":  # every document has a cosine: exactly the restricted ranking
        assert filtered == [d for d in full if d in matching][:5]
    else:
        assert filtered  # BM25 only ranks documents that share a word with the query
        assert set(filtered) <= set(matching)


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_k_hits_come_back_when_k_documents_match_however_deep_they_rank(index: Index, mode: str) -> None:
    """With few candidates per system, a post-filter would leave the list short; a pre-filter does not."""
    query = "Kostka polynomial counting tableaux with charge"
    full = [r.doc_id for r in index.search(query, k=1000, mode="dense")]
    low = full[-12:]  # the dozen documents the query ranks lowest
    index.candidates = 5
    try:
        years = sorted({d.metadata["year"] for d in documents() if d.id in low})
        cats = sorted({d.metadata["category"] for d in documents() if d.id in low})
        filters = [f"year in {','.join(map(str, years))}", f"category in {','.join(cats)}"]
        matching = [d.id for d in documents() if passes(d.id, filters)]
        assert len(matching) >= 10
        results = index.search(query, k=10, mode=mode, filters=filters)
    finally:
        index.candidates = 200
    assert len(results) == 10
    assert all(passes(r.doc_id, filters) for r in results)


def test_a_filter_nothing_passes_returns_no_results(index: Index) -> None:
    assert index.search("Hall algebra", k=10, filters=["year>3000"]) == []


def test_unknown_field_is_a_clear_error_that_lists_the_fields(index: Index) -> None:
    with pytest.raises(FilterError, match=r"no document .* has a field 'yeer' \(fields: category, tags, year\)"):
        index.search("Hall algebra", filters=["yeer>=2010"])
    with pytest.raises(FilterError, match="bad filter"):
        index.search("Hall algebra", filters=["year>>2010"])


def test_chunks_and_batches_are_filtered_too(index: Index) -> None:
    filters = ["tags=survey"]
    batch = index.search_batch(["Markov chain", "Galois group"], k=5, filters=filters)
    chunks = index.search("Markov chain", k=5, documents=False, filters=filters)
    assert all(passes(r.doc_id, filters) for r in [*batch[0], *batch[1], *chunks])
    assert len(batch[0]) == len(batch[1]) == len(chunks) == 5


def test_usearch_backend_filters_the_same_way(
    index: Index, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the ANN threshold: the exact path for a small passing set, and the graph walk asked deep enough."""
    from fieldtune.search.backends import usearch_hnsw

    graph = build_tiny_index(tmp_path_factory, documents(), "filters-ann", ann_threshold=0)
    assert graph.info()["ann_in_use"]
    query, filters = "random graph with independent edges", ["category=math.PR"]
    expected = [r.doc_id for r in index.search(query, k=10, mode="dense", filters=filters)]
    assert [r.doc_id for r in graph.search(query, k=10, mode="dense", filters=filters)] == expected
    monkeypatch.setattr(usearch_hnsw, "EXACT_FILTERED_ROWS", 0)
    walked = [r.doc_id for r in graph.search(query, k=10, mode="dense", filters=filters)]
    assert len(walked) == 10 and all(passes(d, filters) for d in walked)
    assert len(set(walked) & set(expected)) >= 9


def test_deleted_documents_stay_out_of_filtered_searches(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    small = build_tiny_index(tmp_path_factory, documents()[:12], "filters-delete")
    filters = ["category=math.CO"]
    before = {r.doc_id for r in small.search("algebra", k=10, filters=filters)}
    gone = sorted(before)[0]
    small.delete([gone])
    after = {r.doc_id for r in small.search("algebra", k=10, filters=filters)}
    assert gone not in after and after == before - {gone}
    assert np.all([passes(d, filters) for d in after])


# -- command line and HTTP ---------------------------------------------------------------------


def test_cli_search_filter(index: Index, capsys, monkeypatch) -> None:
    args = ["search", "Hall algebra", "--index", str(index.root), "--json", "--k", "5"]
    code, out, err = run_cli([*args, "--filter", "year>=2015", "--filter", "category=math.CO"], capsys, monkeypatch)
    assert code == 0, err
    hits = json.loads(out)
    assert len(hits) == 5 and all(passes(h["doc_id"], ["year>=2015", "category=math.CO"]) for h in hits)
    code, out, err = run_cli([*args, "--filter", "venue=x"], capsys, monkeypatch)
    assert code == 2 and "error:" in err and "'venue'" in err and "Traceback" not in err
    code, out, err = run_cli([*args, "--filter", "year=>2015"], capsys, monkeypatch)
    assert code == 2 and "bad filter" in err


def test_http_filter(index: Index) -> None:
    pytest.importorskip("fastapi", reason="the service needs the serve extra")
    pytest.importorskip("httpx", reason="TestClient needs httpx (the dev extra)")
    from fastapi.testclient import TestClient

    from fieldtune.search.service import create_app

    client = TestClient(create_app(index), raise_server_exceptions=False, base_url="http://127.0.0.1")
    answer = client.get("/search", params=[("q", "Hall algebra"), ("k", "4"), ("filter", "year<2005"),
                                           ("filter", "tags=survey")])
    assert answer.status_code == 200, answer.text
    hits = answer.json()["results"]
    assert hits and all(passes(h["doc_id"], ["year<2005", "tags=survey"]) for h in hits)
    bad = client.get("/search", params={"q": "Hall algebra", "filter": "nope=1"})
    assert bad.status_code == 400 and "'nope'" in bad.json()["message"]
    assert client.get("/search", params={"q": "x", "filter": "year>>1"}).status_code == 400


def test_metadata_reaches_the_index_from_a_jsonl_corpus(tmp_path: Path, capsys, monkeypatch) -> None:
    """A JSONL record's extra keys are the filterable fields (ids and chunking unchanged)."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in corpus_records()[:10]), encoding="utf-8")
    out = tmp_path / "idx"
    args = ["index", "--corpus", str(corpus), "--out", str(out), "--max-tokens", "64", "--overlap", "8"]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    hits = Index.open(out).search("algebra", k=10, mode="dense", filters=["year<2005"])
    assert {h.doc_id for h in hits} == {r["_id"] for r in corpus_records()[:10] if r["year"] < 2005}
    assert all(h.chunk_id == f"{h.doc_id}#{h.chunk_id.split('#')[1]}" for h in hits)
