"""Read a JSON Lines corpus (one object per line, as in BEIR's ``corpus.jsonl``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fieldtune.errors import InputError
from fieldtune.ingest.common import (
    ID_KEYS,
    UTF8_FIX,
    EmptyRecord,
    RecordProblem,
    RecordSink,
    build_document,
    iter_lines,
    json_type,
    utf8_problem,
)
from fieldtune.types import Document

_KNOWN_KEYS = frozenset({*ID_KEYS, "text", "title", "metadata"})


def read_jsonl_corpus(path: Path, sink: RecordSink) -> None:
    """Hand every record of ``path`` to ``sink``; blank lines are ignored."""
    saw_record = False
    for number, offset, raw in iter_lines(path):
        if not raw.strip():
            continue
        saw_record = True
        record = f"line {number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            sink.bad(path, utf8_problem(err, offset), record=record, fix=UTF8_FIX, cause=err)
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            # Some messages end in "at" already ("Invalid control character at"): never "at at column".
            problem = f"malformed JSON ({err.msg.removesuffix(' at')} at column {err.colno})"
            sink.bad(path, problem, record=record, cause=err)
            continue
        try:
            document = document_from_json(data, source=f"{path.name}:{number}")
        except EmptyRecord as err:
            sink.empty(path, str(err), record=record)
            continue
        except RecordProblem as err:
            sink.bad(path, str(err), record=record)
            continue
        sink.add(document, path, record=record)
    if not saw_record:
        raise InputError(path, "is empty", hint="expected one JSON object per line")


def document_from_json(data: object, *, source: str) -> Document:
    """Turn one decoded JSON value into a document.

    The id comes from ``_id`` (BEIR) or ``id``; ``metadata`` must be an object;
    any other key is kept in the metadata too (``metadata`` wins on a clash).
    """
    if not isinstance(data, dict):
        raise RecordProblem(f"expected a JSON object, got {json_type(data)}")
    id_key = next((key for key in ID_KEYS if data.get(key) is not None), ID_KEYS[0])
    explicit = data.get("metadata")
    if explicit is None:
        explicit = {}
    if not isinstance(explicit, dict):
        raise RecordProblem(f"`metadata` must be a JSON object, not {json_type(explicit)}")
    extra: dict[str, Any] = {
        key: value
        for key, value in data.items()
        if key not in _KNOWN_KEYS or (key in ID_KEYS and key != id_key)
    }
    return build_document(
        raw_id=data.get(id_key),
        text=data.get("text"),
        title=data.get("title"),
        metadata={**extra, **explicit},
        source=source,
    )
