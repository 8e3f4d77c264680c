"""Pieces shared by the readers of the user's queries: formats, normalisation, the report, line readers.

Every reader stops at the first bad record with an :class:`~fieldtune.errors.InputError`
that names the file and line (the build must not train on half of what the
user meant to give). Blank queries and repeated queries are not errors: real
search logs are full of both, so they are left out and counted in a
:class:`SupervisionReport`.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from fieldtune.errors import InputError
from fieldtune.ingest.common import ID_KEYS, UTF8_FIX, RecordProblem, coerce_id, iter_lines, json_type, utf8_problem
from fieldtune.types import Query

logger = logging.getLogger("fieldtune.supervision")

#: Keys that hold a query's text in JSONL records and CSV headers, in order of preference.
TEXT_KEYS = ("query", "text")


class QueryFormat(str, Enum):
    """File suffixes that hold queries (without the dot); a directory is read as BEIR."""

    TXT = "txt"
    JSONL = "jsonl"
    CSV = "csv"

    @classmethod
    def from_path(cls, path: Path) -> QueryFormat | None:
        suffix = path.suffix.lower().lstrip(".")
        return next((member for member in cls if member.value == suffix), None)

    @classmethod
    def listed(cls) -> str:
        """``".txt, .jsonl or .csv"`` for error messages."""
        names = [f".{member.value}" for member in cls]
        return ", ".join(names[:-1]) + " or " + names[-1]


def normalise(text: str) -> str:
    """The form two queries share when they are the same query: NFKC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass
class SupervisionReport:
    """What a reader kept and what it left out.

    ``read`` counts the queries returned; ``blank`` those with no text;
    ``duplicates`` those whose normalised text an earlier query had (dropped,
    or for labelled data merged into the earlier one); ``held_out`` the BEIR
    queries also judged in ``qrels/test.tsv`` (evaluation queries, never
    trained on); ``no_positive`` labelled queries whose judgements were all
    "not relevant". One report may be passed to several calls; counts add up.
    """

    read: int = 0
    blank: int = 0
    duplicates: int = 0
    held_out: int = 0
    no_positive: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for people, e.g. ``read 120 queries; left out 2 blank, 3 duplicates``."""
        parts = [
            f"{count} {noun}"
            for count, noun in (
                (self.blank, "blank"),
                (self.duplicates, "duplicates"),
                (self.held_out, "also judged in qrels/test.tsv"),
                (self.no_positive, "without a relevant document"),
            )
            if count
        ]
        head = f"read {self.read} {'query' if self.read == 1 else 'queries'}"
        return f"{head}; left out {', '.join(parts)}" if parts else head


def line_label(number: int) -> str:
    return f"line {number}"


def decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each line; bad UTF-8 stops with the line and byte offset named."""
    try:
        for number, offset, raw in iter_lines(path):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(path, utf8_problem(err, offset), record=line_label(number), hint=UTF8_FIX) from err
    except OSError as err:
        raise InputError(path, f"cannot be read ({err.strerror or err})") from err


def json_objects(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """``(line number, object)`` for each non-blank line of a JSON Lines file."""
    for number, line in decoded_lines(path):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            problem = f"malformed JSON ({err.msg} at column {err.colno})"
            raise InputError(path, problem, record=line_label(number)) from err
        if not isinstance(data, dict):
            raise InputError(path, f"expected a JSON object, got {json_type(data)}", record=line_label(number))
        yield number, data


def record_id(path: Path, number: int, data: dict[str, object]) -> str:
    """The record's ``_id`` or ``id``, or ``q<line>`` when it has neither."""
    key = next((k for k in ID_KEYS if data.get(k) is not None), None)
    if key is None:
        return f"q{number}"
    try:
        return coerce_id(data[key])
    except RecordProblem as err:
        raise InputError(path, str(err), record=line_label(number)) from None


def record_text(path: Path, number: int, data: dict[str, object]) -> str:
    """The query text under ``query`` (or ``text``); "" when there is none, so the caller counts it as blank."""
    key = next((k for k in TEXT_KEYS if k in data), None)
    if key is None:
        raise InputError(
            path, f"has no `query` or `text` field (found: {', '.join(data) or 'none'})", record=line_label(number)
        )
    value = data[key]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(path, f"`{key}` must be a string, not {json_type(value)}", record=line_label(number))
    return value.strip()


class QueryCollector:
    """Keeps queries in input order: blanks and repeated texts left out and counted, a repeated id refused."""

    def __init__(self, path: Path, report: SupervisionReport) -> None:
        self.path = path
        self.report = report
        self.queries: list[Query] = []
        self._texts: set[str] = set()
        self._ids: dict[str, str] = {}

    def add(self, query_id: str, text: str, where: str) -> None:
        if not text.strip():
            self.report.blank += 1
            return
        if query_id in self._ids:
            raise InputError(
                self.path,
                f"query id {query_id!r} was already used at {self._ids[query_id]}",
                record=where,
                hint="give every query its own id",
            )
        self._ids[query_id] = where
        key = normalise(text)
        if key in self._texts:
            self.report.duplicates += 1
            return
        self._texts.add(key)
        self.queries.append(Query(id=query_id, text=text.strip()))

    def finish(self) -> list[Query]:
        """The queries kept; none at all is an error (a build cannot adapt to no queries)."""
        self.report.read += len(self.queries)
        if not self.queries:
            raise InputError(self.path, f"holds no usable query ({self.report.summary()})",
                             hint="give at least one non-blank query")
        if self.report.blank or self.report.duplicates:
            logger.info("%s: %s", self.path, self.report.summary())
        return self.queries
