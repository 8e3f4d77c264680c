from __future__ import annotations

import json
from pathlib import Path

import pytest

from fieldtune.demo.run import run_demo

# The whole demo short of training: collects SymPy's docstrings, encodes, evaluates (half a minute).
pytestmark = pytest.mark.slow


def test_demo_prints_base_vs_bm25_table(tmp_path: Path) -> None:
    text = run_demo(tmp_path / "demo", limit=40, train=False)
    assert "SymPy" in text and "| **minilm** (under test)" in text and "| bm25 |" in text
    result = json.loads((tmp_path / "demo" / "eval.json").read_text())
    assert result["counts"]["documents"] == 40
    assert (tmp_path / "demo" / "work" / "chunks.jsonl").exists()
    # Summaries (the queries) are not inside the documents they point to.
    beir = tmp_path / "demo" / "sympy-docstrings"
    records = [json.loads(line) for line in (beir / "corpus.jsonl").open()]
    corpus = {record["_id"]: record["text"] for record in records}
    queries = [json.loads(line) for line in (beir / "queries.jsonl").open()]
    assert all(q["text"] not in corpus[q["_id"][2:]] for q in queries if q["_id"][2:] in corpus)


def test_the_demo_splits_the_summaries_into_held_out_and_user_queries() -> None:
    from fieldtune.demo.run import split_queries
    from fieldtune.evaluate.beir import EvalSet

    corpus = {f"d{i}": None for i in range(10)}
    queries = {f"q{i}": f"summary {i}" for i in range(10)}
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(10)}
    held_out, given = split_queries(EvalSet(name="s", corpus=corpus, queries=queries, qrels=qrels), seed=0)
    assert len(held_out.qrels) == 5 and len(given) == 5 and held_out.corpus is corpus
    assert not set(given) & {queries[q] for q in held_out.qrels}  # no held-out query is given to the build
    assert split_queries(EvalSet(name="s", corpus=corpus, queries=queries, qrels=qrels), seed=0)[1] == given
