"""Shared fixtures: the bundled model's tokenizer (loaded once) and a tiny BEIR set."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read or write the user's embedding cache."""
    monkeypatch.setenv("FIELDTUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tokenizer():
    from fieldtune.chunking import load_tokenizer

    return load_tokenizer("minilm")


TINY_CORPUS = [
    {
        "_id": "d1",
        "title": "Kostka numbers",
        "text": "Kostka numbers count semistandard Young tableaux of a given shape and weight.",
    },
    {
        "_id": "d2",
        "title": "Hall polynomials",
        "text": "Hall polynomials are the structure constants of the Hall algebra of finite abelian p-groups.",
    },
    {
        "_id": "d3",
        "title": "Protein folding",
        "text": "Chaperone proteins assist the folding of newly synthesised polypeptide chains in the cell.",
    },
    {
        "_id": "d4",
        "title": "Graph colouring",
        "text": "A proper colouring assigns colours to the vertices of a graph so that adjacent vertices differ.",
    },
    {
        "_id": "d5",
        "title": "Heat equation",
        "text": "The heat equation is a parabolic partial differential equation describing diffusion of heat.",
    },
    {
        "_id": "q3",
        "title": "",
        "text": "Text of a query that also sits in the corpus, as some sets do: which proteins help folding?",
    },
]
TINY_QUERIES = [
    {"_id": "q1", "text": "how many semistandard tableaux have shape and weight"},
    {"_id": "q2", "text": "structure constants of the Hall algebra"},
    {"_id": "q3", "text": "which proteins help folding?"},
    {"_id": "q4", "text": "vertex colouring of graphs"},
]
TINY_QRELS = [("q1", "d1", 2), ("q2", "d2", 1), ("q3", "d3", 1), ("q4", "d4", 1), ("q4", "d5", 0)]


def write_beir_dir(root: Path, corpus=TINY_CORPUS, queries=TINY_QUERIES, qrels=TINY_QRELS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries), encoding="utf-8")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    return write_beir_dir(tmp_path / "tiny")


def run_cli(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """Run ``fieldtune ARGS`` in-process through the real entry point; return (exit code, stdout, stderr)."""
    from fieldtune.cli import main

    monkeypatch.setattr(sys, "argv", ["fieldtune", *args])
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def build_tiny_index(tmp_path_factory: pytest.TempPathFactory, documents: list, name: str, **options):
    """A small real index (minilm, 64-token chunks) built with its own embedding cache; returns the Index."""
    from fieldtune.search import Index

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDTUNE_CACHE", str(tmp_path_factory.mktemp("cache")))
        root = tmp_path_factory.mktemp("indexes") / name
        return Index.build(documents, root, model="minilm", max_tokens=64, overlap=8, progress=False, **options)
