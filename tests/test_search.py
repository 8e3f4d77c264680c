"""The search index end to end with the real bundled model on a tiny corpus (offline, ~1 minute).

One index is built per module; tests that change an index work on a copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fieldtune.search import (
    Index,
    IndexExistsError,
    IndexNotFoundError,
    SearchMode,
    SearchOptionError,
    UnknownDocumentError,
)
from fieldtune.types import Document

from .conftest import run_cli

TOPICS = [
    (
        "kostka",
        "Kostka numbers",
        "Kostka numbers count semistandard Young tableaux of a given shape and weight.",
    ),
    (
        "hall",
        "Hall polynomials",
        "Hall polynomials are structure constants of the Hall algebra of finite abelian p-groups.",
    ),
    (
        "chaperone",
        "Protein folding",
        "Chaperone proteins assist the folding of newly synthesised polypeptide chains in cells.",
    ),
    (
        "colouring",
        "Graph colouring",
        "A proper colouring gives graph vertices colours so that adjacent vertices differ.",
    ),
    (
        "heat",
        "Heat equation",
        "The heat equation is a parabolic partial differential equation describing heat diffusion.",
    ),
    (
        "volcano",
        "Volcanic eruptions",
        "Magma rising through the crust erupts as lava, ash and volcanic gases from a volcano.",
    ),
    (
        "photosynthesis",
        "Photosynthesis",
        "Plants turn sunlight, water and carbon dioxide into glucose and oxygen in chloroplasts.",
    ),
    (
        "sorting",
        "Quicksort",
        "Quicksort partitions an array around a pivot element and sorts the two parts recursively.",
    ),
    (
        "inflation",
        "Inflation",
        "Central banks raise interest rates to slow inflation, the general rise of prices.",
    ),
    (
        "tides",
        "Ocean tides",
        "Tides are the rise and fall of sea levels caused by the gravitational pull of the moon.",
    ),
    (
        "vaccine",
        "Vaccines",
        "A vaccine trains the immune system to recognise a pathogen through a harmless antigen.",
    ),
    (
        "bread",
        "Sourdough bread",
        "Sourdough bread is leavened by a starter culture of wild yeast and lactic acid bacteria.",
    ),
    (
        "chess",
        "Chess openings",
        "The Sicilian Defence is a chess opening that answers white's king pawn with the c-pawn.",
    ),
    (
        "glacier",
        "Glaciers",
        "Glaciers are slow rivers of ice that carve valleys as they flow downhill.",
    ),
    (
        "transistor",
        "Transistors",
        "A transistor is a semiconductor device that amplifies or switches electronic signals.",
    ),
    (
        "sonnet",
        "Sonnets",
        "A sonnet is a fourteen-line poem in iambic pentameter with a fixed rhyme scheme.",
    ),
    (
        "bees",
        "Honey bees",
        "Honey bees communicate the direction of flowers to their hive mates with a waggle dance.",
    ),
    (
        "blackhole",
        "Black holes",
        "A black hole is a region of spacetime where gravity is so strong no light escapes.",
    ),
    (
        "coffee",
        "Coffee roasting",
        "Roasting coffee beans triggers the Maillard reaction that creates aroma and brown colour.",
    ),
    (
        "bridge",
        "Suspension bridges",
        "A suspension bridge hangs its deck from cables slung between tall towers.",
    ),
]
EASY = {
    "semistandard Young tableaux shape weight": "kostka",
    "which proteins help polypeptide chains fold": "chaperone",
    "lava and ash from a volcano": "volcano",
    "moon gravity causes sea level rise": "tides",
    "sorting an array with a pivot": "sorting",
}


def documents() -> list[Document]:
    docs = []
    for i, (doc_id, title, text) in enumerate(TOPICS):
        metadata = {"concepts": [title.lower()]} if i % 2 == 1 else {}
        docs.append(Document(id=doc_id, title=title, text=text, metadata=metadata))
    return docs


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> tuple[Index, Path]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDTUNE_CACHE", str(cache))
        root = tmp_path_factory.mktemp("indexes") / "tiny"
        index = Index.build(documents(), root, max_tokens=32, overlap=4, progress=False)
    return index, root


def _ranked(results) -> list[tuple[str, str, float]]:
    return [(r.doc_id, r.chunk_id, round(r.score, 5)) for r in results]


def test_build_writes_manifest_and_open_gives_identical_results(built) -> None:
    index, root = built
    manifest = json.loads((root / "index.json").read_text())
    assert manifest["model"]["spec"] == "minilm" and manifest["dimension"] == 384
    assert manifest["counts"]["documents"] == len(TOPICS) and manifest["storage"] == "int8"
    assert (
        manifest["chunking"] == {"max_tokens": 32, "overlap": 4} and manifest["ann"]["file"] is None
    )
    reopened = Index.open(root)
    for mode in SearchMode:
        for query in EASY:
            assert _ranked(reopened.search(query, mode=mode)) == _ranked(
                index.search(query, mode=mode)
            )


@pytest.mark.parametrize("mode", [m.value for m in SearchMode])
def test_each_mode_puts_the_planted_answer_first(built, mode: str) -> None:
    index, _ = built
    batch = index.search_batch(list(EASY), k=5, mode=mode)
    for (query, answer), results in zip(EASY.items(), batch, strict=True):
        assert results[0].doc_id == answer, (mode, query, _ranked(results))
        assert [r.rank for r in results] == list(range(1, len(results) + 1))
        assert len({r.doc_id for r in results}) == len(results)  # documents, not chunks
        scores = [r.score for r in results]
        assert scores == sorted(scores, reverse=True)


def test_result_fields_snippet_highlights_and_concepts(built) -> None:
    index, _ = built
    top = index.search("lava and ash from a volcano", k=1, mode="hybrid")[0]
    assert top.title == "Volcanic eruptions" and top.chunk_id.startswith("volcano#")
    assert top.concepts == ["volcanic eruptions"]
    words = {top.snippet[s:e].lower() for s, e in top.highlights}
    assert {"lava", "ash", "volcano"} <= words
    assert index.search("lava and ash from a volcano", k=1, fusion="score")[0].doc_id == "volcano"
    chunks = index.search("lava", k=3, mode="bm25", documents=False)
    assert chunks[0].chunk_id.startswith("volcano#")


def test_ann_path_matches_exact_search(built, tmp_path: Path, cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("FIELDTUNE_CACHE", str(cache))  # reuse the module's embeddings
    exact, _ = built
    ann = Index.build(
        documents(), tmp_path / "ann", max_tokens=32, overlap=4, ann_threshold=5, progress=False
    )
    assert ann.info()["ann_in_use"] and not exact.info()["ann_in_use"]
    for query in EASY:
        got = [r.doc_id for r in ann.search(query, k=3, mode="dense")]
        assert got == [r.doc_id for r in exact.search(query, k=3, mode="dense")]


def test_matryoshka_funnel_shortlists_at_a_smaller_dim(built) -> None:
    index, _ = built
    assert index.dims == [384, 256, 128, 64]
    results = index.search("sorting an array with a pivot", k=5, mode="dense", dim=64)
    assert len(results) == 5 and results[0].doc_id == "sorting"
    full = {
        r.doc_id: r.score for r in index.search("sorting an array with a pivot", k=5, mode="dense")
    }
    assert results[0].score == pytest.approx(
        full["sorting"], abs=1e-6
    )  # rescored at full dimension


def test_add_and_delete_then_reopen(built, tmp_path: Path, cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("FIELDTUNE_CACHE", str(cache))
    root = tmp_path / "copy"
    shutil.copytree(built[1], root)
    index = Index.open(root)
    new = [
        Document(
            id="origami",
            title="Origami",
            text="Origami is the Japanese art of folding paper into figures such as cranes.",
        ),
        Document(
            id="tango",
            title="Tango",
            text="Tango is a partner dance from Buenos Aires with sharp, dramatic steps.",
        ),
        Document(
            id="sorting",
            title="Merge sort",
            text="Merge sort splits a list in halves, sorts them and merges the sorted halves.",
        ),
    ]
    assert index.add(new) == 3
    assert index.search("folding paper cranes", k=1)[0].doc_id == "origami"
    assert index.document("sorting").title == "Merge sort"  # same id: replaced
    assert index.delete(["tango", "volcano", "no-such-id"]) == 2
    for mode in SearchMode:
        hits = {
            r.doc_id
            for r in index.search("lava and ash from a volcano tango dance", k=25, mode=mode)
        }
        assert not hits & {"tango", "volcano"}
    assert index.info()["counts"]["documents"] == len(TOPICS) + 2 - 2
    with pytest.raises(UnknownDocumentError):
        index.document("volcano")
    reopened = Index.open(root)
    for query in [*EASY, "folding paper cranes", "merge two sorted halves"]:
        for mode in SearchMode:
            assert _ranked(reopened.search(query, mode=mode)) == _ranked(
                index.search(query, mode=mode)
            )
    # An Index notices a generation published by another Index (or process).
    assert reopened.delete(["origami"]) == 1
    assert "origami" not in {r.doc_id for r in index.search("folding paper cranes", k=5)}


def test_int8_storage_is_compact(built) -> None:
    index, root = built
    sizes = index.info()["storage_bytes"]
    rows = index.info()["counts"]["rows"]
    float32 = rows * 384 * 4
    assert sum(sizes.values()) <= 0.30 * float32
    vectors = np.load(next((root / "segments").iterdir()) / "vectors.npy", mmap_mode="r")
    assert vectors.dtype == np.int8 and vectors.shape == (rows, 384)


def test_bad_input_errors(built, tmp_path: Path) -> None:
    index, root = built
    with pytest.raises(IndexNotFoundError, match="no such index"):
        Index.open(tmp_path / "missing")
    with pytest.raises(IndexNotFoundError, match="not a fieldtune index"):
        Index.open(tmp_path)
    with pytest.raises(SearchOptionError, match="dense, bm25, hybrid"):
        index.search("x", mode="semantic")
    with pytest.raises(SearchOptionError, match="384, 256, 128, 64"):
        index.search("x", dim=100)
    for k in (0, 1001):
        with pytest.raises(SearchOptionError, match="1 to 1000"):
            index.search("x", k=k)
    with pytest.raises(SearchOptionError, match="rrf, score"):
        index.search("x", fusion="max")
    with pytest.raises(KeyError):
        index.document("nope")
    with pytest.raises(IndexExistsError):
        Index.build(documents(), root, progress=False)
    with pytest.raises(SearchOptionError, match="int8, float16"):
        Index.build(documents(), tmp_path / "bad", storage="int4", progress=False)


def test_cli_index_and_search(tmp_path: Path, cache: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("FIELDTUNE_CACHE", str(cache))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, t, x in TOPICS),
        encoding="utf-8",
    )
    out = tmp_path / "idx"
    code, stdout, err = run_cli(
        [
            "index",
            "--corpus",
            str(corpus),
            "--out",
            str(out),
            "--max-tokens",
            "32",
            "--overlap",
            "4",
            "--storage",
            "float16",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert f"indexed {len(TOPICS)} documents" in stdout
    code, stdout, err = run_cli(
        ["search", "--index", str(out), "lava and ash", "--k", "3", "--json"], capsys, monkeypatch
    )
    assert code == 0, err
    results = json.loads(stdout)
    assert results[0]["doc_id"] == "volcano" and len(results) == 3
    assert {"rank", "score", "title", "snippet", "highlights", "passage", "chunk_id"} <= set(
        results[0]
    )
    code, stdout, _ = run_cli(
        ["search", "--index", str(out), "lava", "--mode", "bm25", "--chunks"], capsys, monkeypatch
    )
    assert code == 0 and "[lava]" in stdout and "volcano#0" in stdout
    bad = {
        ("--mode", "fuzzy"): "dense, bm25, hybrid",
        ("--dim", "100"): "384, 256, 128, 64",
        ("--k", "0"): "1 to 1000",
    }
    for (flag, value), expected in bad.items():
        code, _, err = run_cli(
            ["search", "--index", str(out), "lava", flag, value], capsys, monkeypatch
        )
        assert code == 2 and err.startswith("error:") and expected in err, err
    code, _, err = run_cli(
        ["search", "--index", str(tmp_path / "nope"), "lava"], capsys, monkeypatch
    )
    assert code == 2 and "no such index" in err


def test_searches_run_while_an_update_is_published(
    built, tmp_path: Path, cache: Path, monkeypatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("FIELDTUNE_CACHE", str(cache))
    root = tmp_path / "live"
    shutil.copytree(built[1], root)
    index = Index.open(root)
    before = {r.doc_id for r in index.search("honey bees dance", k=25, mode="bm25")}

    def search(_: int) -> set[str]:
        return {r.doc_id for r in index.search("honey bees dance", k=25, mode="bm25")}

    with ThreadPoolExecutor(4) as pool:
        pending = [pool.submit(search, i) for i in range(40)]
        assert index.delete(["bees"]) == 1
        seen = [future.result() for future in pending]
    # Every search saw the whole old state or the whole new one.
    assert all(s in (before, before - {"bees"}) for s in seen)
    assert "bees" not in search(0)
