"""Tests for fieldtune.ingest: every reader, and every kind of bad input."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest

from fieldtune.errors import InputError
from fieldtune.ingest import IngestReport, OnError, read_corpus


def _write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _minimal_pdf(text: str) -> bytes:
    """A small, valid one-page PDF whose page shows ``text`` in Helvetica."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(bodies, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(bodies) + 1,
        xref,
    )
    return bytes(out)


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------- readers


def test_beir_folder_reads_only_corpus(tmp_path: Path) -> None:
    _write_jsonl(
        tmp_path / "corpus.jsonl",
        [
            {"_id": "d1", "title": "Alpha", "text": "first", "metadata": {"year": 2020}},
            {"_id": "d2", "title": "", "text": "second"},
        ],
    )
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "a query"}\n')
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    docs = read_corpus(tmp_path)
    assert [d.id for d in docs] == ["d1", "d2"]
    assert docs[0].title == "Alpha" and docs[0].text == "first"
    assert docs[0].metadata == {"year": 2020}
    assert docs[1].source == "corpus.jsonl:2"


def test_jsonl_ids_metadata_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    lines = [
        json.dumps({"_id": "a", "text": "x", "metadata": {"k": 1}, "lang": "en"}),
        "",
        "   ",
        json.dumps({"id": 7, "title": "Only a title"}),
        json.dumps({"id": "c", "text": "z", "metadata": {"lang": "de"}, "lang": "en"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = IngestReport()
    docs = read_corpus(str(path), report=report)
    assert [d.id for d in docs] == ["a", "7", "c"]
    assert docs[0].metadata == {"k": 1, "lang": "en"}
    # A title-only record is read with its title as its text (so its chunk has tokens), not twice.
    assert docs[1].text == "Only a title" and docs[1].title == ""
    assert docs[2].metadata == {"lang": "de"}  # explicit metadata wins over a stray key
    assert [d.source for d in docs] == ["docs.jsonl:1", "docs.jsonl:4", "docs.jsonl:5"]
    assert report.read == 3 and report.left_out == 0
    assert report.summary() == "read 3 documents; nothing skipped"


def test_jsonl_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "a", "text": "x"}).encode() + b"\n")
    assert [d.id for d in read_corpus(path)] == ["a"]


def test_csv_reader(tmp_path: Path) -> None:
    path = tmp_path / "docs.csv"
    path.write_text(
        'id,title,text,author\n1,First,"hello, world",ann\n\n2,,"two\nlines",bob\n',
        encoding="utf-8",
    )
    docs = read_corpus(path)
    assert [d.id for d in docs] == ["1", "2"]
    assert docs[0].text == "hello, world" and docs[0].title == "First"
    assert docs[0].metadata == {"author": "ann"}
    assert docs[1].text == "two\nlines"
    assert docs[1].source == "docs.csv:4"


def test_csv_prefers_underscore_id(tmp_path: Path) -> None:
    path = tmp_path / "docs.csv"
    path.write_text("_id,id,text\nA,old,body\n", encoding="utf-8")
    (doc,) = read_corpus(path)
    assert doc.id == "A" and doc.metadata == {"id": "old"}


def test_folder_reader_txt_md_tex_pdf(tmp_path: Path) -> None:
    pypdf = pytest.importorskip("pypdf")
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "b.txt").write_text("plain text\n", encoding="utf-8")
    (root / "a.md").write_text(
        "intro\n```\n# not this\n```\n# The Title #\nbody\n", encoding="utf-8"
    )
    (root / "sub" / "paper.tex").write_text(
        "% header comment\n\\title{On {Nested} Braces}\n50\\% done % secret\nkept\n",
        encoding="utf-8",
    )
    (root / "sub" / "plain.tex").write_text("no title here\n", encoding="utf-8")
    (root / "sub" / "scan.pdf").write_bytes(_minimal_pdf("Hello PDF world"))
    (root / ".hidden.txt").write_text("hidden", encoding="utf-8")
    (root / ".git").mkdir()
    (root / ".git" / "x.txt").write_text("hidden", encoding="utf-8")
    (root / "image.png").write_bytes(b"\x89PNG")
    with (root / "sub" / "scan.pdf").open("rb") as handle:  # the fixture itself is valid
        assert "Hello PDF world" in pypdf.PdfReader(handle).pages[0].extract_text()

    docs = {d.id: d for d in read_corpus(root)}
    assert list(docs) == ["a", "b", "sub/paper", "sub/plain", "sub/scan"]
    assert docs["a"].title == "The Title"
    assert docs["b"].title == "b" and docs["b"].text == "plain text\n"
    assert docs["b"].metadata == {"path": "b.txt", "format": "txt"}
    paper = docs["sub/paper"]
    assert paper.title == "On {Nested} Braces"
    assert "secret" not in paper.text and "header comment" not in paper.text
    assert "50\\% done" in paper.text and "kept" in paper.text
    assert docs["sub/plain"].title == "plain"
    assert "Hello PDF world" in docs["sub/scan"].text
    assert docs["sub/scan"].metadata == {"path": "sub/scan.pdf", "format": "pdf"}
    assert docs["sub/scan"].source == str(root / "sub" / "scan.pdf")


def test_broken_pdf_is_always_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("pypdf")
    (tmp_path / "good.txt").write_text("fine", encoding="utf-8")
    (tmp_path / "x.pdf").write_bytes(os.urandom(512))
    report = IngestReport()
    with caplog.at_level(logging.WARNING, logger="fieldtune.ingest"):
        docs = read_corpus(tmp_path, on_error=OnError.STOP, report=report)
    assert [d.id for d in docs] == ["good"]
    assert report.unreadable_pdfs == 1
    assert report.problems[0][0].endswith("x.pdf")
    assert "x.pdf" in caplog.text
    assert "1 unreadable PDF" in report.summary()


def test_only_unreadable_pdfs_means_no_documents(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    (tmp_path / "x.pdf").write_bytes(b"not a pdf at all")
    (tmp_path / "blank.pdf").write_bytes(_minimal_pdf(""))
    report = IngestReport()
    with pytest.raises(InputError, match="no documents"):
        read_corpus(tmp_path, report=report)
    assert report.unreadable_pdfs == 2


def test_missing_pypdf_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4")
    monkeypatch.setitem(sys.modules, "pypdf", None)
    with pytest.raises(ImportError, match=r"pip install fieldtune\[pdf\]"):
        read_corpus(tmp_path)


def test_reading_never_changes_the_input(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    _write_jsonl(root / "docs.jsonl", [{"id": "a", "text": "x"}, {"id": "a", "text": "dup"}])
    (root / "docs.csv").write_text("id,text\n1,one\n", encoding="utf-8")
    (root / "n.md").write_text("# T\nbody", encoding="utf-8")
    (root / "bad.txt").write_bytes(b"caf\xe9\n")
    (root / "x.pdf").write_bytes(b"garbage")
    before = _snapshot(root)
    read_corpus(root / "docs.jsonl", on_error=OnError.SKIP)
    read_corpus(root / "docs.csv")
    read_corpus(root, on_error=OnError.SKIP)
    with pytest.raises(InputError):
        read_corpus(root)
    assert _snapshot(root) == before


def test_on_error_accepts_strings_and_lists_members() -> None:
    assert OnError("SKIP") is OnError.SKIP
    with pytest.raises(ValueError, match="stop, skip"):
        OnError("ignore")


# ---------------------------------------------------------------- bad input


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.jsonl: does not exist"):
        read_corpus(tmp_path / "nope.jsonl")


def test_unsupported_suffix_lists_formats(tmp_path: Path) -> None:
    path = tmp_path / "corpus.docx"
    path.write_bytes(b"PK")
    with pytest.raises(InputError) as info:
        read_corpus(path)
    message = str(info.value)
    assert "corpus.docx" in message
    for suffix in (".jsonl", ".csv", ".txt", ".md", ".tex", ".pdf"):
        assert suffix in message


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.jsonl", b""),
        ("blank.jsonl", b"\n  \n\n"),
        ("empty.csv", b""),
        ("header.csv", b"id,text\n"),
    ],
)
@pytest.mark.parametrize("on_error", list(OnError))
def test_empty_file_always_fails(
    tmp_path: Path, name: str, content: bytes, on_error: OnError
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"{name}: is empty"):
        read_corpus(path, on_error=on_error)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.docx").write_bytes(b"PK")
    with pytest.raises(InputError, match="is empty.*1 .docx"):
        read_corpus(tmp_path)


def test_malformed_json_stop(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n{"id": "b" "text": "y"}\n', encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_corpus(path)
    message = str(info.value)
    assert message.startswith(f"{path}, line 2: malformed JSON (Expecting ',' delimiter")
    assert "use --on-error skip to skip bad records" in message
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


def test_malformed_json_skip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n{oops\n[1, 2]\n', encoding="utf-8")
    report = IngestReport()
    with caplog.at_level(logging.WARNING, logger="fieldtune.ingest"):
        docs = read_corpus(path, on_error=OnError.SKIP, report=report)
    assert [d.id for d in docs] == ["a"]
    assert report.skipped == 2
    assert [where for where, _ in report.problems] == [f"{path}, line 2", f"{path}, line 3"]
    assert "expected a JSON object, got array" in report.problems[1][1]
    assert "line 2" in caplog.text
    assert report.summary() == "read 1 document; skipped 2 bad records"


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"text": "no id"}, "has no id"),
        ({"id": "", "text": "blank id"}, "has no id"),
        ({"id": 1.5, "text": "x"}, "id must be a string or an integer"),
        ({"id": "a", "text": ["x"]}, "`text` must be a string"),
        ({"id": "a", "text": "x", "metadata": [1]}, "`metadata` must be a JSON object"),
    ],
)
def test_jsonl_bad_record(tmp_path: Path, record: dict[str, object], problem: str) -> None:
    path = _write_jsonl(tmp_path / "c.jsonl", [{"id": "ok", "text": "fine"}, record])
    with pytest.raises(InputError, match=f"c.jsonl, line 2: {problem}"):
        read_corpus(path)
    report = IngestReport()
    assert [d.id for d in read_corpus(path, on_error="skip", report=report)] == ["ok"]
    assert report.skipped == 1


@pytest.mark.parametrize("record", [{"id": "a"}, {"id": "a", "text": "  ", "title": ""}])
@pytest.mark.parametrize("on_error", [OnError.STOP, OnError.SKIP])
def test_jsonl_empty_record_is_skipped_and_counted_whatever_on_error(
    tmp_path: Path, record: dict[str, object], on_error: OnError
) -> None:
    """Real collections hold empty records (Cranfield has one): they never stop a run, and are counted."""
    path = _write_jsonl(tmp_path / "c.jsonl", [{"id": "ok", "text": "fine"}, record])
    report = IngestReport()
    assert [d.id for d in read_corpus(path, on_error=on_error, report=report)] == ["ok"]
    assert report.empty_records == 1 and report.skipped == 0
    assert report.problems == [(f"{path}, line 2", "has no text and no title (id 'a')")]
    assert report.summary() == "read 1 document; skipped 1 empty record"


def test_csv_bad_records(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,text\n1,fine\n,no id\n3,\n4,too,many\n", encoding="utf-8")
    with pytest.raises(InputError, match="c.csv, line 3: has no id"):
        read_corpus(path)
    report = IngestReport()
    docs = read_corpus(path, on_error=OnError.SKIP, report=report)
    assert [d.id for d in docs] == ["1"]
    assert report.skipped == 2 and report.empty_records == 1  # row "3," has no text: empty, not bad
    assert [where for where, _ in report.problems] == [f"{path}, line {n}" for n in (3, 4, 5)]
    assert "has 3 fields but the header has 2" in report.problems[2][1]


def test_csv_missing_text_column(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,body\n1,x\n", encoding="utf-8")
    with pytest.raises(
        InputError, match=r"c.csv, line 1: has no `text` column \(found columns: id, body\)"
    ):
        read_corpus(path, on_error=OnError.SKIP)


def test_non_utf8_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    first = b'{"id": "a", "text": "x"}\n'
    second = b'{"id": "b", "text": "caf\xe9"}\n'
    path.write_bytes(first + second)
    offset = len(first) + second.index(b"\xe9")
    with pytest.raises(InputError) as info:
        read_corpus(path)
    message = str(info.value)
    assert message.startswith(f"{path}, line 2: not valid UTF-8: byte 0xe9 at byte offset {offset}")
    assert "--on-error skip" in message
    report = IngestReport()
    assert [d.id for d in read_corpus(path, on_error=OnError.SKIP, report=report)] == ["a"]
    assert report.skipped == 1


def test_non_utf8_csv(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(b'id,text\n1,fine\n2,"multi\nline caf\xe9"\n3,ok\n')
    with pytest.raises(
        InputError, match=r"c.csv, line 4: not valid UTF-8: byte 0xe9 at byte offset 32"
    ):
        read_corpus(path)
    report = IngestReport()
    docs = read_corpus(path, on_error=OnError.SKIP, report=report)
    assert [d.id for d in docs] == ["1", "3"]
    assert docs[1].source == "c.csv:5"
    assert report.skipped == 1


def test_non_utf8_text_file_in_folder(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text("# Good\ntext", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes(b"line one\nna\xefve\n")
    with pytest.raises(InputError) as info:
        read_corpus(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'latin1.txt'}, line 2: not valid UTF-8")
    assert "byte offset 11" in message
    report = IngestReport()
    docs = read_corpus(tmp_path, on_error=OnError.SKIP, report=report)
    assert [d.id for d in docs] == ["good"]
    assert report.skipped == 1


def test_duplicate_ids_stop_and_skip(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "c.jsonl",
        [{"id": "a", "text": "first"}, {"id": "b", "text": "x"}, {"_id": "a", "text": "second"}],
    )
    with pytest.raises(InputError) as info:
        read_corpus(path)
    message = str(info.value)
    assert message.startswith(f"{path}, line 3: duplicate id 'a'")
    assert "first seen at c.jsonl:1, again at c.jsonl:3" in message
    report = IngestReport()
    docs = read_corpus(path, on_error=OnError.SKIP, report=report)
    assert [(d.id, d.text) for d in docs] == [("a", "first"), ("b", "x")]
    assert report.duplicate_ids == 1


def test_duplicate_ids_across_files_in_folder(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("one", encoding="utf-8")
    (tmp_path / "a.txt").write_text("two", encoding="utf-8")
    with pytest.raises(
        InputError, match="duplicate id 'a': first seen at .*a.md, again at .*a.txt"
    ):
        read_corpus(tmp_path)


def test_all_records_skipped_means_no_documents(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("{bad\n{worse\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"c.jsonl: no documents .*2 bad records"):
        read_corpus(path, on_error=OnError.SKIP)
