"""Read the user's unlabelled queries (``build --queries FILE``) into :class:`~fieldtune.types.Query` records.

Layouts (see :func:`read_queries`): ``.txt`` one query per line (ids ``q1``,
``q2``, ... by line number), ``.jsonl`` (``_id``/``id`` optional, text under
``query`` or ``text``), ``.csv`` (a header with a ``query`` or ``text`` column,
an optional ``_id``/``id`` column), or a BEIR directory, of which **only the
queries judged in ``qrels/train.tsv`` (and ``qrels/dev.tsv``) are read** —
never the evaluation queries of ``qrels/test.tsv`` (:mod:`fieldtune.supervision.beir`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from fieldtune.errors import InputError
from fieldtune.ingest.common import ID_KEYS
from fieldtune.supervision.beir import (
    TRAINING_SPLITS,
    query_texts,
    refuse_evaluation_queries_file,
    training_judgements,
)
from fieldtune.supervision.common import (
    TEXT_KEYS,
    QueryCollector,
    QueryFormat,
    SupervisionReport,
    decoded_lines,
    json_objects,
    line_label,
    record_id,
    record_text,
)
from fieldtune.types import Query


def read_queries(path: str | Path, *, report: SupervisionReport | None = None) -> list[Query]:
    """The user's queries in input order, blanks and repeats (same normalised text) left out and counted.

    A bad record raises :class:`~fieldtune.errors.InputError` naming the file
    and line; so does an input with no usable query.
    """
    path = Path(path).expanduser()
    report = SupervisionReport() if report is None else report
    collector = QueryCollector(path, report)
    if not path.exists():
        raise InputError(path, "does not exist", hint="check the path given to --queries")
    if path.is_dir():
        _read_beir(path, collector)
        return collector.finish()
    refuse_evaluation_queries_file(path)
    file_format = QueryFormat.from_path(path)
    if file_format is QueryFormat.TXT:
        for number, line in decoded_lines(path):
            collector.add(f"q{number}", line.strip(), line_label(number))
    elif file_format is QueryFormat.JSONL:
        for number, data in json_objects(path):
            collector.add(record_id(path, number, data), record_text(path, number, data), line_label(number))
    elif file_format is QueryFormat.CSV:
        for number, query_id, text in _csv_rows(path):
            collector.add(query_id, text, line_label(number))
    else:
        raise InputError(
            path,
            f"unsupported file type {path.suffix or '(no suffix)'}: expected {QueryFormat.listed()}, "
            "or a BEIR directory with qrels/train.tsv",
        )
    return collector.finish()


def _read_beir(directory: Path, collector: QueryCollector) -> None:
    judgements = training_judgements(directory, TRAINING_SPLITS, collector.report)
    for query_id, (text, where) in query_texts(directory, judgements).items():
        collector.add(query_id, text, where)


def _csv_rows(path: Path) -> Iterator[tuple[int, str, str]]:
    """``(line the row starts on, id, text)`` per data row; ids default to ``q<line>``."""
    lines = (line for _, line in decoded_lines(path))
    reader = csv.reader(lines)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        hint = "expected a header row with a `query` column, then one query per row"
        raise InputError(path, "is empty", hint=hint) from None
    except csv.Error as err:
        raise InputError(path, f"malformed CSV header ({err})", record=line_label(1)) from err
    text_name = next((name for name in TEXT_KEYS if name in header), None)
    if text_name is None:
        raise InputError(path, f"has no `query` or `text` column (found columns: {', '.join(header)})",
                         record=line_label(1), hint="name the column that holds the queries `query`")
    text_index = header.index(text_name)
    id_index = next((header.index(name) for name in ID_KEYS if name in header), None)
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise InputError(path, f"malformed CSV ({err})", record=line_label(start)) from err
        first, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise InputError(path, f"has {len(row)} fields but the header has {len(header)}",
                             record=line_label(first), hint="quote fields that contain commas")
        query_id = row[id_index].strip() if id_index is not None else ""
        yield first, query_id or f"q{first}", row[text_index].strip()
