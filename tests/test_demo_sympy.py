"""The SymPy docstring demo corpus: found offline, split honestly, written as BEIR."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("sympy")

from fieldtune.demo.sympy_docs import (  # noqa: E402
    SympyDoc,
    collect_sympy_docstrings,
    parse_see_also,
    sympy_corpus,
    sympy_eval_set,
    write_beir,
)
from fieldtune.types import EvalSet  # noqa: E402

PACKAGES = ("sympy.ntheory",)


def _normalized(text: str) -> str:
    return " ".join(text.split())


def test_collects_public_non_test_docstrings() -> None:
    docs = collect_sympy_docstrings(packages=PACKAGES)
    assert len(docs) >= 20
    assert all(isinstance(doc, SympyDoc) for doc in docs)
    names = [doc.qualname for doc in docs]
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    assert len({doc.body for doc in docs}) == len(docs)
    for doc in docs:
        assert doc.qualname.startswith("sympy.ntheory")
        assert doc.qualname.startswith(doc.module)
        assert ".tests." not in doc.qualname and "benchmarks" not in doc.qualname
        assert not any(part.startswith("_") for part in doc.qualname.split("."))


def test_summaries_are_one_line_and_not_in_their_body() -> None:
    for doc in collect_sympy_docstrings(packages=PACKAGES):
        assert "\n" not in doc.summary and doc.summary == doc.summary.strip()
        assert 3 <= len(doc.summary.split()) <= 40
        assert len(doc.body) >= 100
        assert doc.summary not in doc.body
        assert _normalized(doc.summary) not in _normalized(doc.body)


def test_corpus_never_contains_the_query_and_ids_are_stable() -> None:
    docs = {doc.qualname: doc for doc in collect_sympy_docstrings(packages=PACKAGES)}
    corpus = sympy_corpus(packages=PACKAGES)
    assert [d.id for d in corpus] == [d.id for d in sympy_corpus(packages=PACKAGES)]
    assert len({d.id for d in corpus}) == len(corpus) == len(docs)
    for document in corpus:
        summary = docs[document.id].summary
        assert document.title == ""
        assert summary not in document.text
        assert document.metadata["source"].startswith("sympy ")
        assert isinstance(document.metadata["see_also"], list)
        assert document.metadata["module"] == docs[document.id].module


def test_limit_and_seed_are_deterministic() -> None:
    full = sympy_corpus(packages=PACKAGES)
    first = [d.id for d in sympy_corpus(limit=10, seed=3, packages=PACKAGES)]
    assert first == [d.id for d in sympy_corpus(limit=10, seed=3, packages=PACKAGES)]
    assert len(first) == 10 and first == sorted(first)
    assert set(first) <= {d.id for d in full}
    samples = [sympy_corpus(limit=10, seed=s, packages=PACKAGES) for s in range(5)]
    assert len({tuple(d.id for d in sample) for sample in samples}) > 1
    assert len(sympy_corpus(limit=10_000, packages=PACKAGES)) == len(full)
    with pytest.raises(ValueError):
        sympy_corpus(limit=-1, packages=PACKAGES)


def test_eval_set_qrels_reference_existing_records() -> None:
    eval_set = sympy_eval_set(limit=40, seed=1, packages=PACKAGES)
    assert isinstance(eval_set, EvalSet) and eval_set.name == "sympy-docstrings"
    assert len(eval_set.corpus) == 40
    assert set(eval_set.qrels) == set(eval_set.queries)
    judged = {doc_id for rels in eval_set.qrels.values() for doc_id in rels}
    assert judged == set(eval_set.corpus)
    assert all(grade == 1 for rels in eval_set.qrels.values() for grade in rels.values())
    assert len(set(eval_set.queries.values())) == len(eval_set.queries)
    for qid, text in eval_set.queries.items():
        assert qid.startswith("q:") and qid[2:] in eval_set.corpus
        for doc_id in eval_set.qrels[qid]:
            assert text not in eval_set.corpus[doc_id].text
    assert eval_set.judged_query_ids == sorted(eval_set.queries)


def test_write_beir_round_trips(tmp_path: Path) -> None:
    eval_set = sympy_eval_set(limit=25, seed=0, packages=PACKAGES)
    out = write_beir(eval_set, tmp_path / "beir", split="dev")
    assert out == tmp_path / "beir"
    with open(out / "corpus.jsonl", encoding="utf-8") as handle:
        corpus = [json.loads(line) for line in handle]
    with open(out / "queries.jsonl", encoding="utf-8") as handle:
        queries = {row["_id"]: row["text"] for row in map(json.loads, handle)}
    with open(out / "qrels" / "dev.tsv", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        assert next(reader) == ["query-id", "corpus-id", "score"]
        qrels: dict[str, dict[str, int]] = {}
        for qid, doc_id, score in reader:
            qrels.setdefault(qid, {})[doc_id] = int(score)
    expected = {doc_id: doc.text for doc_id, doc in eval_set.corpus.items()}
    assert {row["_id"]: row["text"] for row in corpus} == expected
    assert all(set(row) == {"_id", "title", "text", "metadata"} for row in corpus)
    assert corpus[0]["metadata"] == eval_set.corpus[corpus[0]["_id"]].metadata
    assert queries == eval_set.queries
    assert qrels == eval_set.qrels
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_parse_see_also_handles_common_forms() -> None:
    doc = (
        "Summary.\n\nSee Also\n========\n\nfoo, bar.baz\n:func:`~sympy.qux`\n"
        "\nReferences\n==========\n\nx"
    )
    assert parse_see_also(doc) == ("foo", "bar.baz", "sympy.qux")
    dashed = "S.\n\nSee Also\n--------\nalpha : the first\n    more words here\nbeta\n"
    assert parse_see_also(dashed) == ("alpha", "beta")
    assert parse_see_also("No section here.") == ()
