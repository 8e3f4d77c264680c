"""Tests for fieldtune.supervision: every query layout, the BEIR test-split guard, bad lines named, the dev split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fieldtune.errors import InputError
from fieldtune.supervision import SupervisionReport, read_queries, read_train_data, split_dev
from fieldtune.types import LabelledQuery, Query

CORPUS_IDS = {"d1", "d2", "d3", "d4"}


def _jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _beir(root: Path, *, dev: bool = False) -> Path:
    """Queries t1, t2 judged in train, v1 in dev, e1 (and t2, a leak) in test."""
    root.mkdir()
    _jsonl(root / "corpus.jsonl", [{"_id": d, "text": f"text of {d}"} for d in sorted(CORPUS_IDS)])
    _jsonl(root / "queries.jsonl", [
        {"_id": "e1", "text": "an evaluation query"},
        {"_id": "t1", "text": "how do chaperones fold proteins"},
        {"_id": "t2", "text": "heat equation diffusion"},
        {"_id": "v1", "text": "graph colouring bounds"},
    ])
    (root / "qrels").mkdir()
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nt1\td3\t1\nt1\td1\t0\nt2\td4\t2\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\ne1\td1\t1\n")
    if dev:
        (root / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nv1\td2\t1\n")
    return root


# --- unlabelled queries -----------------------------------------------------------------------------------------


def test_txt_one_query_per_line_ids_by_line_blanks_and_repeats_counted(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_text("kostka numbers\n\n  hall polynomials  \nKostka   Numbers\nheat equation\n", encoding="utf-8")
    report = SupervisionReport()
    queries = read_queries(path, report=report)
    assert queries == [Query("q1", "kostka numbers"), Query("q3", "hall polynomials"), Query("q5", "heat equation")]
    assert (report.read, report.blank, report.duplicates) == (3, 1, 1)
    assert "1 blank" in report.summary() and "1 duplicates" in report.summary()


def test_jsonl_ids_and_text_keys(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "q.jsonl", [
        {"_id": "a", "text": "first"},
        {"id": 7, "query": "second"},
        {"query": "third"},
        {"_id": "b", "text": None},
    ])
    assert read_queries(path) == [Query("a", "first"), Query("7", "second"), Query("q3", "third")]


def test_csv_query_or_text_column_and_optional_id(tmp_path: Path) -> None:
    with_ids = tmp_path / "with_ids.csv"
    with_ids.write_text('id,query,notes\nx1,"graphs, colourings",n\nx2,heat,\n', encoding="utf-8")
    assert read_queries(with_ids) == [Query("x1", "graphs, colourings"), Query("x2", "heat")]
    no_ids = tmp_path / "no_ids.csv"
    no_ids.write_text('text\n"a query\nover two lines"\n\nanother\n', encoding="utf-8")
    assert read_queries(no_ids) == [Query("q2", "a query\nover two lines"), Query("q5", "another")]


def test_beir_directory_reads_train_and_dev_queries_never_test(tmp_path: Path) -> None:
    root = _beir(tmp_path / "set", dev=True)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\ne1\td1\t1\nt2\td4\t1\n")
    report = SupervisionReport()
    queries = read_queries(root, report=report)
    assert [q.id for q in queries] == ["t1", "v1"]  # e1 is only in test; t2 is judged in test too
    assert all("evaluation" not in q.text for q in queries)
    assert report.held_out == 1


def test_beir_directory_without_train_qrels_is_refused(tmp_path: Path) -> None:
    root = _beir(tmp_path / "set")
    (root / "qrels" / "train.tsv").unlink()
    with pytest.raises(InputError, match=r"train\.tsv.*does not exist.*never read"):
        read_queries(root)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("q.jsonl", '{"text": "fine"}\n{"text": "broken"\n', r"q\.jsonl, line 2: malformed JSON"),
        ("q.jsonl", '{"text": "fine"}\n["a list"]\n', r"line 2: expected a JSON object, got array"),
        ("q.jsonl", '{"text": "fine"}\n\n{"text": 5}\n', r"line 3: `text` must be a string, not number"),
        ("q.jsonl", '{"title": "no text"}\n', r"line 1: has no `query` or `text` field"),
        ("q.jsonl", '{"id": "a", "text": "one"}\n{"id": "a", "text": "two"}\n', r"line 2: query id 'a' was already"),
        ("q.csv", "query,id\nfine,1\ntoo,many,fields\n", r"q\.csv, line 3: has 3 fields but the header has 2"),
        ("q.csv", "question\nfine\n", r"line 1: has no `query` or `text` column"),
        ("q.tsv", "fine\n", r"unsupported file type \.tsv: expected \.txt, \.jsonl or \.csv"),
    ],
)
def test_bad_records_name_file_and_line(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=expected):
        read_queries(path)


def test_bad_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_bytes(b"fine\nbad \xff byte\n")
    with pytest.raises(InputError, match=r"q\.txt, line 2: not valid UTF-8: byte 0xff"):
        read_queries(path)


def test_no_usable_query_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_text("\n   \n", encoding="utf-8")
    with pytest.raises(InputError, match="holds no usable query"):
        read_queries(path)
    with pytest.raises(InputError, match="does not exist"):
        read_queries(tmp_path / "missing.txt")


# --- labelled pairs ---------------------------------------------------------------------------------------------


def test_beir_train_qrels_positives_and_zero_grade_negatives(tmp_path: Path) -> None:
    root = _beir(tmp_path / "set", dev=True)
    labelled = read_train_data(root, CORPUS_IDS)
    assert labelled == [
        LabelledQuery("t1", "how do chaperones fold proteins", ("d3",), ("d1",)),
        LabelledQuery("t2", "heat equation diffusion", ("d4",)),
    ]  # dev.tsv's v1 is not labelled training data; test.tsv's e1 is never read


def test_beir_judgement_of_an_unknown_document_names_the_qrels_line(tmp_path: Path) -> None:
    root = _beir(tmp_path / "set")
    with pytest.raises(InputError, match=r"train\.tsv, line 4: judges document 'd4'"):
        read_train_data(root, CORPUS_IDS - {"d4"})


def test_jsonl_pairs_single_or_list_ids_merged_by_query(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "pairs.jsonl", [
        {"query": "kostka numbers", "positive": "d1", "negatives": ["d2", "d3"]},
        {"query": "Kostka  numbers", "positives": ["d2"], "negative": "d4"},
        {"id": "h", "query": "heat", "positive": "d4", "positives": ["d3"]},
        {"query": " ", "positive": "d1"},
    ])
    report = SupervisionReport()
    labelled = read_train_data(path, CORPUS_IDS, report=report)
    assert labelled == [
        LabelledQuery("q1", "kostka numbers", ("d1", "d2"), ("d3", "d4")),  # d2 became a positive
        LabelledQuery("h", "heat", ("d4", "d3")),
    ]
    assert (report.read, report.duplicates, report.blank) == (2, 1, 1)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"query": "q", "positive": "d9"}, r"line 2: `positive` names document 'd9', which is not in the corpus"),
        ({"query": "q", "positive": "d1", "negatives": ["d9"]}, r"line 2: `negatives` names document 'd9'"),
        ({"query": "q", "negatives": ["d1"]}, r"line 2: has no positive document id"),
        ({"query": "q", "positives": [{"id": "d1"}]}, r"line 2: `positives` must hold document ids"),
    ],
)
def test_jsonl_pairs_bad_lines_named(tmp_path: Path, record: dict[str, object], expected: str) -> None:
    path = _jsonl(tmp_path / "pairs.jsonl", [{"query": "fine", "positive": "d1"}, record])
    with pytest.raises(InputError, match=expected):
        read_train_data(path, CORPUS_IDS)


def test_train_data_other_formats_refused(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("query,positive\nq,d1\n", encoding="utf-8")
    with pytest.raises(InputError, match="expected a .jsonl file or a BEIR directory"):
        read_train_data(path, CORPUS_IDS)


# --- the dev split ----------------------------------------------------------------------------------------------


def _queries(count: int, start: int = 0) -> list[Query]:
    return [Query(f"q{i}", f"query number {i}") for i in range(start, start + count)]


def test_split_dev_is_deterministic_ordered_and_near_the_fraction() -> None:
    items = _queries(500)
    train, dev = split_dev(items, 0.2, seed=3)
    assert (train, dev) == split_dev(items, 0.2, seed=3)
    assert sorted(train + dev, key=items.index) == items and not set(train) & set(dev)
    assert dev == [q for q in items if q in set(dev)]  # input order kept
    assert 70 <= len(dev) <= 130
    assert split_dev(items, 0.2, seed=4)[1] != dev


def test_split_dev_is_stable_when_queries_are_added() -> None:
    items = _queries(300)
    train, dev = split_dev(items, 0.2, seed=0)
    more_train, more_dev = split_dev(_queries(50, start=1000) + items[::-1], 0.2, seed=0)
    assert set(dev) <= set(more_dev) and set(train) <= set(more_train)


def test_split_dev_tops_up_to_min_dev_but_keeps_most_for_training() -> None:
    train, dev = split_dev(_queries(30), 0.0, seed=0, min_dev=5)
    assert (len(train), len(dev)) == (25, 5)
    train, dev = split_dev(_queries(6), 0.0, seed=0, min_dev=5)
    assert (len(train), len(dev)) == (3, 3)
    labelled = [LabelledQuery("a", "x", ("d1",)), LabelledQuery("b", "y", ("d2",))]
    assert len(split_dev(labelled, 0.5, seed=0, min_dev=1)[1]) >= 1
    with pytest.raises(ValueError, match="dev fraction"):
        split_dev(labelled, 1.0, seed=0)


def test_a_beir_sets_own_queries_file_is_refused(tmp_path: Path) -> None:
    root = _beir(tmp_path / "set")
    with pytest.raises(InputError, match=r"queries\.jsonl: is the query file of a BEIR set.*pass the directory"):
        read_queries(root / "queries.jsonl")
