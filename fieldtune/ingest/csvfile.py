"""Read a CSV corpus: a header row, then one document per row.

Columns: ``_id`` or ``id`` (required), ``text`` (required), ``title``
(optional); every other column goes into the document's metadata as a string.
Line numbers in messages are physical lines of the file, so a quoted field that
spans several lines is reported at the line its row starts on.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fieldtune.errors import InputError
from fieldtune.ingest.common import (
    ID_KEYS,
    UTF8_FIX,
    EmptyRecord,
    RecordProblem,
    RecordSink,
    build_document,
    iter_lines,
    utf8_problem,
)

#: Large enough for whole books in one cell; csv's default is 131,072 characters.
_FIELD_LIMIT = 2**31 - 1


class _DecodedLines:
    """The file's lines as text for ``csv.reader``, remembering undecodable ones.

    A line with bad bytes is passed on with replacement characters so the
    reader keeps its place; the row that contains it is then rejected.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bad: dict[int, str] = {}

    def __iter__(self) -> Iterator[str]:
        for number, offset, raw in iter_lines(self.path):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as err:
                self.bad[number] = utf8_problem(err, offset)
                yield raw.decode("utf-8", errors="replace")

    def first_bad(self, first: int, last: int) -> tuple[int, str] | None:
        """The first undecodable line among lines ``first..last``, if any."""
        return next(((n, self.bad[n]) for n in range(first, last + 1) if n in self.bad), None)


@dataclass(frozen=True)
class _Columns:
    names: list[str]
    id_index: int
    text_index: int
    title_index: int | None

    @classmethod
    def from_header(cls, path: Path, header: list[str]) -> _Columns:
        names = [name.strip() for name in header]
        found = ", ".join(names)
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise InputError(
                path,
                f"column {duplicates[0]!r} appears more than once in the header",
                record="line 1",
                hint="give every column its own name",
            )
        id_name = next((key for key in ID_KEYS if key in names), None)
        if id_name is None:
            raise InputError(
                path,
                f"has no id column (found columns: {found})",
                record="line 1",
                hint="name the column that holds document ids `_id` or `id`",
            )
        if "text" not in names:
            raise InputError(
                path,
                f"has no `text` column (found columns: {found})",
                record="line 1",
                hint="name the column that holds the document text `text`",
            )
        title_index = names.index("title") if "title" in names else None
        return cls(names, names.index(id_name), names.index("text"), title_index)

    def metadata(self, row: list[str]) -> dict[str, str]:
        used = {self.id_index, self.text_index, self.title_index}
        return {name: row[i] for i, name in enumerate(self.names) if i not in used}


@contextmanager
def _large_fields() -> Iterator[None]:
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, _FIELD_LIMIT))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _is_blank(row: list[str]) -> bool:
    return not any(cell.strip() for cell in row)


def read_csv(path: Path, sink: RecordSink) -> None:
    """Hand every data row of ``path`` to ``sink``; blank rows are ignored."""
    lines = _DecodedLines(path)
    with _large_fields():
        reader = csv.reader(lines)
        columns = _read_header(path, reader, lines)
        saw_row = False
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                sink.bad(path, f"malformed CSV ({err})", record=f"line {start}", cause=err)
                start = reader.line_num + 1
                continue
            first, start = start, reader.line_num + 1
            if _is_blank(row):
                continue
            saw_row = True
            _read_row(path, sink, columns, row, lines, first, reader.line_num)
    if not saw_row:
        raise InputError(path, "is empty: it has a header row but no data rows")


def _read_header(path: Path, reader: Iterator[list[str]], lines: _DecodedLines) -> _Columns:
    try:
        header = next(reader)
        while _is_blank(header):
            header = next(reader)
    except StopIteration:
        raise InputError(
            path, "is empty", hint="expected a header row, then one row per document"
        ) from None
    except csv.Error as err:
        raise InputError(path, f"malformed CSV header ({err})", record="line 1") from err
    if lines.bad:  # only the header's lines have been decoded so far
        number = min(lines.bad)
        raise InputError(path, lines.bad[number], record=f"line {number}", hint=UTF8_FIX)
    return _Columns.from_header(path, header)


def _read_row(
    path: Path,
    sink: RecordSink,
    columns: _Columns,
    row: list[str],
    lines: _DecodedLines,
    first: int,
    last: int,
) -> None:
    record = f"line {first}"
    bad = lines.first_bad(first, last)
    if bad is not None:
        sink.bad(path, bad[1], record=f"line {bad[0]}", fix=UTF8_FIX)
        return
    if len(row) != len(columns.names):
        problem = f"has {len(row)} fields but the header has {len(columns.names)}"
        sink.bad(path, problem, record=record, fix="quote fields that contain commas")
        return
    title = row[columns.title_index] if columns.title_index is not None else ""
    try:
        document = build_document(
            raw_id=row[columns.id_index],
            text=row[columns.text_index],
            title=title,
            metadata=columns.metadata(row),
            source=f"{path.name}:{first}",
        )
    except EmptyRecord as err:
        sink.empty(path, str(err), record=record)
        return
    except RecordProblem as err:
        sink.bad(path, str(err), record=record)
        return
    sink.add(document, path, record=record)
