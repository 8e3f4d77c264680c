"""The command line end to end: ingest, eval on a tiny fixture, and bad input that loses nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import TINY_CORPUS, run_cli, write_beir_dir


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture
def built(tmp_path: Path, capsys, monkeypatch) -> Path:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in TINY_CORPUS), encoding="utf-8")
    out = tmp_path / "work"
    code, stdout, _ = run_cli(
        ["ingest", str(corpus), "--out", str(out), "--max-tokens", "16", "--overlap", "4"], capsys, monkeypatch
    )
    assert code == 0, stdout
    return out


def test_ingest_writes_artifacts_and_skips_unchanged(built: Path, capsys, monkeypatch) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    assert set(manifest["stages"]) == {"ingest", "chunk"}
    chunks = [json.loads(line) for line in (built / "chunks.jsonl").read_text().splitlines()]
    assert {c["doc_id"] for c in chunks} == {r["_id"] for r in TINY_CORPUS}
    assert all(c["n_tokens"] <= 16 for c in chunks)
    corpus = built.parent / "corpus.jsonl"
    code, out, _ = run_cli(
        ["ingest", str(corpus), "--out", str(built), "--max-tokens", "16", "--overlap", "4"], capsys, monkeypatch
    )
    assert code == 0 and out.count("unchanged, skipped") == 2


BAD_CORPORA = {
    "missing path": (None, "does not exist"),
    "empty file": (b"", "is empty"),
    "malformed JSON line": (b'{"_id": "a", "text": "fine"}\n{"_id": "b", "text": \n', "line 2"),
    "non-UTF-8 bytes": (b'{"_id": "a", "text": "caf\xe9"}\n', "line 1"),
    "duplicate ids": (b'{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n', "duplicate"),
}


@pytest.mark.parametrize("case", list(BAD_CORPORA))
def test_bad_corpus_names_file_and_record_and_loses_nothing(
    case: str, built: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    content, expected = BAD_CORPORA[case]
    bad = tmp_path / "bad.jsonl"
    if content is not None:
        bad.write_bytes(content)
    before = _snapshot(built)
    code, _, err = run_cli(["ingest", str(bad), "--out", str(built)], capsys, monkeypatch)
    assert code == 2
    assert "bad.jsonl" in err and expected in err
    assert _snapshot(built) == before


def test_empty_corpus_and_unparseable_pdf(built: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    folder = tmp_path / "pdfs"
    folder.mkdir()
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    before = _snapshot(built)
    code, _, err = run_cli(["ingest", str(folder), "--out", str(built)], capsys, monkeypatch)
    assert code == 2 and "no documents" in err and "pdfs" in err
    assert _snapshot(built) == before
    (folder / "note.txt").write_text("A readable note about Hall polynomials.")
    code, out, err = run_cli(["ingest", str(folder), "--out", str(tmp_path / "w2")], capsys, monkeypatch)
    assert code == 0 and "1 unreadable PDF" in out + err


def test_skip_flag_skips_malformed_lines(tmp_path: Path, capsys, monkeypatch) -> None:
    bad = tmp_path / "c.jsonl"
    bad.write_bytes(b'{"_id": "a", "text": "fine"}\nnot json\n{"_id": "b", "text": "also fine"}\n')
    code, out, _ = run_cli(
        ["ingest", str(bad), "--out", str(tmp_path / "w"), "--on-error", "skip"], capsys, monkeypatch
    )
    assert code == 0 and "skipped 1" in out


def test_eval_end_to_end_on_tiny_fixture(tiny_beir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    out_json = tmp_path / "r.json"
    report = tmp_path / "r.md"
    code, out, err = run_cli(
        ["eval", "--model", "minilm", "--data", str(tiny_beir), "--baseline", "bm25", "--dims", "384,128",
         "--json", str(out_json), "--report", str(report), "--resamples", "500"], capsys, monkeypatch)
    assert code == 0, err
    result = json.loads(out_json.read_text())
    assert result["counts"] == {"documents": 6, "queries": 4, "judged_queries": 4, "judgements": 5}
    assert set(result["systems"]) == {"minilm", "bm25"}
    assert set(result["systems"]["minilm"]["results"]) == {"384", "128"}
    for metrics in result["systems"]["minilm"]["results"].values():
        assert set(metrics) == {"ndcg@10", "mrr@10", "recall@10", "recall@100", "hit@1", "hit@3", "hit@5", "map"}
        assert 0.5 < metrics["ndcg@10"] <= 1.0  # the tiny task is easy for a real model
    comparison = result["comparisons"][0]
    assert comparison["system"] == "bm25" and "ci_low" in comparison["model_minus_system"]
    assert "| System |" in report.read_text() and "nDCG@10" in out


def test_query_id_inside_corpus_never_counts(tiny_beir: Path) -> None:
    from fieldtune.evaluate.beir import load_beir
    from fieldtune.evaluate.systems import BM25System, DenseSystem

    data = load_beir(tiny_beir)
    for system in (BM25System(), DenseSystem(name="m", model_spec="minilm", dims=[384])):
        for run in system.runs(data, data.judged_query_ids).values():
            assert "q3" not in run["q3"]  # the corpus holds a document with the query's id


def test_qrels_naming_unknown_documents(tmp_path: Path, capsys, monkeypatch) -> None:
    data = write_beir_dir(tmp_path / "bad", qrels=[("q1", "d1", 1), ("q2", "nope", 1)])
    previous = tmp_path / "r.json"
    previous.write_text('{"kept": true}')
    code, _, err = run_cli(
        ["eval", "--model", "minilm", "--data", str(data), "--json", str(previous)], capsys, monkeypatch
    )
    assert code == 2 and "test.tsv" in err and "nope" in err
    assert previous.read_text() == '{"kept": true}'


@pytest.mark.parametrize("args,expected", [
    (["eval", "--model", "no-such-model", "--data", "."], "Registered models: minilm"),
    (["serve", "--index", "no-such-index"], "no such index directory"),
])
def test_clear_errors(args: list[str], expected: str, tiny_beir: Path, capsys, monkeypatch) -> None:
    args = [str(tiny_beir) if a == "." else a for a in args]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and expected in err


def test_shared_id_judged_relevant_is_kept(tmp_path: Path) -> None:
    """pubmedqa numbers each question after its abstract: that id match is the answer, not a self-hit."""
    from fieldtune.evaluate.beir import load_beir
    from fieldtune.evaluate.systems import BM25System, DenseSystem

    corpus = [{"_id": "7", "title": "", "text": "Mitochondria remodel lace plant leaves during programmed cell death."},
              {"_id": "8", "title": "", "text": "Snellen acuity differs in strabismic amblyopia."}]
    queries = [{"_id": "7", "text": "Do mitochondria play a role in programmed cell death of lace plant leaves?"}]
    data = load_beir(write_beir_dir(tmp_path / "p", corpus=corpus, queries=queries, qrels=[("7", "7", 1)]))
    for system in (BM25System(), DenseSystem(name="m", model_spec="minilm", dims=[384])):
        for run in system.runs(data, data.judged_query_ids).values():
            assert next(iter(sorted(run["7"], key=run["7"].get, reverse=True))) == "7"
