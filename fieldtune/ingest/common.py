"""Pieces shared by the corpus readers: options, the report, and the record sink.

Every reader turns its input into candidate records and hands each one to a
:class:`RecordSink`, which applies the ``on_error`` policy, rejects duplicate
ids and counts what happened in an :class:`IngestReport`. Readers never decide
on their own whether to stop or skip, so all formats behave the same way.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from fieldtune.errors import InputError
from fieldtune.types import Document

logger = logging.getLogger("fieldtune.ingest")

SKIP_HINT = "use --on-error skip to skip bad records"
UTF8_FIX = "re-save the file as UTF-8"
ID_KEYS = ("_id", "id")


class OnError(str, Enum):
    """What to do with a bad record: stop at the first one, or skip it and go on."""

    STOP = "stop"
    SKIP = "skip"

    @classmethod
    def _missing_(cls, value: object) -> OnError:
        if isinstance(value, str):
            for member in cls:
                if member.value == value.strip().lower():
                    return member
        choices = ", ".join(member.value for member in cls)
        raise ValueError(f"on_error must be one of: {choices} (got {value!r})")

    def __str__(self) -> str:
        return self.value


class FileFormat(str, Enum):
    """File suffixes the readers understand (without the dot)."""

    JSONL = "jsonl"
    CSV = "csv"
    TXT = "txt"
    MD = "md"
    TEX = "tex"
    PDF = "pdf"

    @property
    def suffix(self) -> str:
        return f".{self.value}"

    @classmethod
    def from_path(cls, path: Path) -> FileFormat | None:
        """The format of ``path`` by its suffix (any case), or None if unsupported."""
        suffix = path.suffix.lower().lstrip(".")
        return next((member for member in cls if member.value == suffix), None)


#: Formats read one file per document from a folder.
DOCUMENT_FORMATS = (FileFormat.TXT, FileFormat.MD, FileFormat.TEX, FileFormat.PDF)


def list_suffixes(formats: tuple[FileFormat, ...] | type[FileFormat]) -> str:
    """``".txt, .md, .tex or .pdf"`` for error messages."""
    names = [member.suffix for member in formats]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


@dataclass
class IngestReport:
    """What :func:`~fieldtune.ingest.read_corpus` read and what it left out.

    ``read`` counts the documents returned; ``skipped`` the bad records left out
    under ``OnError.SKIP``; ``unreadable_pdfs`` the PDFs that could not be parsed
    or held no text (always skipped); ``duplicate_ids`` the records dropped
    because an earlier record had the same id. ``problems`` lists every left-out
    record as ``(location, problem)``. One report may be passed to several calls;
    the counts add up.
    """

    read: int = 0
    skipped: int = 0
    unreadable_pdfs: int = 0
    duplicate_ids: int = 0
    empty_records: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def left_out(self) -> int:
        """Records or files not returned, for any reason."""
        return self.skipped + self.unreadable_pdfs + self.duplicate_ids + self.empty_records

    def summary(self) -> str:
        """One line for people, e.g. ``read 120 documents; skipped 2 bad records``."""
        parts = [
            _plural(count, noun)
            for count, noun in (
                (self.skipped, "bad record"),
                (self.unreadable_pdfs, "unreadable PDF"),
                (self.duplicate_ids, "duplicate id"),
                (self.empty_records, "empty record"),
            )
            if count
        ]
        head = f"read {_plural(self.read, 'document')}"
        return f"{head}; skipped {', '.join(parts)}" if parts else f"{head}; nothing skipped"

    def add(self, other: IngestReport) -> None:
        """Add the counts and problems of ``other`` to this report."""
        self.read += other.read
        self.skipped += other.skipped
        self.unreadable_pdfs += other.unreadable_pdfs
        self.duplicate_ids += other.duplicate_ids
        self.empty_records += other.empty_records
        self.problems.extend(other.problems)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class RecordProblem(Exception):
    """A record that cannot become a document; the message says why."""


class EmptyRecord(RecordProblem):
    """A record with no text at all: skipped and counted whatever ``on_error`` says (real corpora have them)."""


class RecordSink:
    """Collects documents, applying the ``on_error`` policy and the unique-id rule."""

    def __init__(self, on_error: OnError) -> None:
        self.on_error = on_error
        self.report = IngestReport()
        self.documents: list[Document] = []
        self._first_seen: dict[str, str] = {}

    def bad(
        self,
        path: Path,
        problem: str,
        *,
        record: str | None = None,
        fix: str = "",
        cause: BaseException | None = None,
    ) -> None:
        """A bad record: raise under ``STOP``, log and count it under ``SKIP``."""
        if self.on_error is OnError.STOP:
            hint = f"{fix}, or {SKIP_HINT}" if fix else SKIP_HINT
            raise InputError(path, problem, record=record, hint=hint) from cause
        self._leave_out(path, problem, record)
        self.report.skipped += 1

    def empty(self, path: Path, problem: str, *, record: str | None = None) -> None:
        """A record with nothing to read: always skipped, counted and logged."""
        self._leave_out(path, problem, record)
        self.report.empty_records += 1

    def unreadable_pdf(self, path: Path, problem: str) -> None:
        """A PDF without usable text: always skipped, whatever ``on_error`` says."""
        self._leave_out(path, problem, None)
        self.report.unreadable_pdfs += 1

    def add(self, document: Document, path: Path, *, record: str | None = None) -> None:
        """Keep ``document`` unless its id was seen before."""
        first = self._first_seen.get(document.id)
        if first is None:
            self._first_seen[document.id] = document.source
            self.documents.append(document)
            self.report.read += 1
            return
        problem = f"duplicate id {document.id!r}: first seen at {first}, again at {document.source}"
        if self.on_error is OnError.STOP:
            hint = "give every record its own id, or use --on-error skip to keep the first"
            raise InputError(path, problem, record=record, hint=hint)
        self._leave_out(path, problem, record)
        self.report.duplicate_ids += 1

    def finish(self, path: Path) -> list[Document]:
        """The documents read, or an error when there is none at all."""
        if not self.documents:
            raise InputError(
                path,
                f"no documents left to read ({self.report.summary()})",
                hint="fix the problems logged above; see IngestReport.problems",
            )
        return self.documents

    def _leave_out(self, path: Path, problem: str, record: str | None) -> None:
        where = str(path) if record is None else f"{path}, {record}"
        logger.warning("skipped %s: %s", where, problem)
        self.report.problems.append((where, problem))


def iter_lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """``(line number, byte offset of the line, raw bytes)`` for each line.

    A UTF-8 byte-order mark at the start of the file is dropped (offsets still
    count it), so files saved by spreadsheet programs read cleanly.
    """
    with path.open("rb") as handle:
        offset = 0
        for number, raw in enumerate(handle, start=1):
            start = offset
            offset += len(raw)
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
                start += len(codecs.BOM_UTF8)
            yield number, start, raw


def utf8_problem(error: UnicodeDecodeError, base_offset: int = 0) -> str:
    """Describe bad bytes: which ones and at what byte offset in the file."""
    bad = bytes(error.object[error.start : error.end])
    shown = " ".join(f"0x{byte:02x}" for byte in bad[:4])
    return f"not valid UTF-8: byte {shown} at byte offset {base_offset + error.start}"


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    names: Mapping[type, str] = {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def coerce_id(value: object) -> str:
    """A record id as a string; integers are accepted, blanks are missing."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RecordProblem("has no id (give it an `_id` or `id` field)")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordProblem(f"id must be a string or an integer, not {json_type(value)}")
    return str(value)


def _coerce_text(value: object, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordProblem(f"`{name}` must be a string, not {json_type(value)}")
    return value


def build_document(
    *, raw_id: object, text: object, title: object, metadata: dict[str, Any], source: str
) -> Document:
    """Validate one record's fields and make it a document."""
    doc_id = coerce_id(raw_id)
    text_str = _coerce_text(text, "text")
    title_str = _coerce_text(title, "title")
    if not text_str.strip():
        if not title_str.strip():
            raise EmptyRecord(f"has no text and no title (id {doc_id!r})")
        # A title-only record (a list of paper titles) is searchable by its title: it becomes the text,
        # so its chunk has tokens and the title is not shown to the model twice.
        text_str, title_str = title_str, ""
    return Document(id=doc_id, text=text_str, title=title_str, metadata=metadata, source=source)
