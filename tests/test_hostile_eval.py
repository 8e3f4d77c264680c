"""Hostile input to ``fieldtune eval`` (issue 13, items 5 and 7): blank queries and impossible --dims.

Each test failed on commit 59c04d1: blank queries were scored as misses without a word,
``--dims 7`` was labelled "full dimension", and ``--dims 7,99999`` ended in a traceback.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from fieldtune.encoding import Encoder
from fieldtune.evaluate.harness import EvalOptions, run_evaluation
from tests.conftest import TINY_QRELS, TINY_QUERIES, run_cli, write_beir_dir

FAST = EvalOptions(dims=[384], n_resamples=200)


def _with_blank_queries(root: Path, blanks: dict[str, str | None]) -> Path:
    """The tiny set with the text of the queries named in ``blanks`` replaced (blank or null)."""
    queries = [{**q, "text": blanks[q["_id"]]} if q["_id"] in blanks else q for q in TINY_QUERIES]
    return write_beir_dir(root, queries=queries)


def test_blank_queries_are_left_out_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = _with_blank_queries(tmp_path / "blank", {"q2": "", "q4": "  \t "})
    with caplog.at_level(logging.WARNING, logger="fieldtune"):
        result = run_evaluation("minilm", data, options=FAST)
    assert result.counts.judged_queries == 2
    note = "2 of 4 judged queries are blank and were left out of every score: q2, q4"
    assert any(note in n for n in result.notes), result.notes
    assert any(note in record.getMessage() and "queries.jsonl" in record.getMessage() for record in caplog.records)
    # The score is that of the set without the blank queries, not lowered by two silent misses.
    kept = [q for q in TINY_QUERIES if q["_id"] not in {"q2", "q4"}]
    qrels = [r for r in TINY_QRELS if r[0] not in {"q2", "q4"}]
    clean = run_evaluation("minilm", write_beir_dir(tmp_path / "clean", queries=kept, qrels=qrels), options=FAST)
    assert result.score("ndcg@10") == pytest.approx(clean.score("ndcg@10"))


def test_null_query_text_is_blank_and_the_cli_says_so(tmp_path: Path, capsys, monkeypatch) -> None:
    data = _with_blank_queries(tmp_path / "null", {"q1": None})
    code, out, err = run_cli(["eval", "--model", "minilm", "--data", str(data), "--dims", "384", "--resamples", "100"],
                             capsys, monkeypatch)
    assert code == 0, err
    assert "Note: 1 of 4 judged queries are blank and were left out of every score: q1" in out


def test_all_blank_queries_are_refused(tmp_path: Path, capsys, monkeypatch) -> None:
    data = _with_blank_queries(tmp_path / "all", {q["_id"]: " " for q in TINY_QUERIES})
    code, out, err = run_cli(["eval", "--model", "minilm", "--data", str(data)], capsys, monkeypatch)
    assert code == 2, (out, err)
    assert str(data / "queries.jsonl") in err and "all 4 judged queries are blank" in err
    assert "Traceback" not in err


def test_query_text_that_is_not_a_string_names_the_line(tmp_path: Path, capsys, monkeypatch) -> None:
    data = write_beir_dir(tmp_path / "num")
    (data / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": 42}) + "\n", encoding="utf-8")
    code, _, err = run_cli(["eval", "--model", "minilm", "--data", str(data)], capsys, monkeypatch)
    assert code == 2 and "queries.jsonl, line 1" in err and "not a string" in err


def test_dims_beyond_the_model_fail_before_any_encoding(tiny_beir: Path, capsys, monkeypatch) -> None:
    def no_encoding(self, texts, *, kind):
        raise AssertionError("encoded before the dimensions were checked")

    monkeypatch.setattr(Encoder, "encode", no_encoding)
    code, out, err = run_cli(["eval", "--model", "minilm", "--data", str(tiny_beir), "--dims", "7,99999"],
                             capsys, monkeypatch)
    assert code == 2, (out, err)
    assert "99999" in err and "1..384" in err and "--dims" in err
    assert "Traceback" not in err and "AssertionError" not in err


def test_a_single_small_dim_is_not_called_full(tiny_beir: Path, capsys, monkeypatch) -> None:
    code, out, err = run_cli(["eval", "--model", "minilm", "--data", str(tiny_beir), "--dims", "7",
                              "--resamples", "100"], capsys, monkeypatch)
    assert code == 0, err
    assert "Results at full dimension" not in out
    assert "## Results at dimension 7 (the largest evaluated; the model has 384)" in out


def test_dims_are_evaluated_largest_first(tiny_beir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    out_json = tmp_path / "r.json"
    code, out, err = run_cli(["eval", "--model", "minilm", "--data", str(tiny_beir), "--dims", "64,384,64",
                              "--resamples", "100", "--json", str(out_json)], capsys, monkeypatch)
    assert code == 0, err
    assert list(json.loads(out_json.read_text())["systems"]["minilm"]["results"]) == ["384", "64"]
    assert "## Results at full dimension" in out
