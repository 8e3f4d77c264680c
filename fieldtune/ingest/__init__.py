"""Read a corpus from disk into :class:`~fieldtune.types.Document` records.

One entry point, :func:`read_corpus`, accepts

* a BEIR folder (one with ``corpus.jsonl``; only that file is read),
* a ``.jsonl`` file (one JSON object per line),
* a ``.csv`` file (header row; ``_id``/``id`` and ``text`` columns),
* a folder of ``.txt``, ``.md``, ``.tex`` and ``.pdf`` files (one document
  each), or a single such file.

Bad records stop the run with an :class:`~fieldtune.errors.InputError` that
names the file and line, or, with ``on_error=OnError.SKIP``, are logged to the
``fieldtune.ingest`` logger and counted in an :class:`IngestReport`. Input
files are only ever opened for reading.
"""

from __future__ import annotations

from pathlib import Path

from fieldtune.errors import InputError
from fieldtune.ingest.common import (
    DOCUMENT_FORMATS,
    FileFormat,
    IngestReport,
    OnError,
    RecordSink,
    list_suffixes,
)
from fieldtune.ingest.csvfile import read_csv
from fieldtune.ingest.folder import read_document, read_folder
from fieldtune.ingest.jsonl import read_jsonl_corpus
from fieldtune.ingest.pdf import require_pypdf
from fieldtune.types import Document

__all__ = ["IngestReport", "OnError", "read_corpus"]

BEIR_CORPUS = "corpus.jsonl"


def read_corpus(
    path: str | Path,
    *,
    on_error: OnError = OnError.STOP,
    report: IngestReport | None = None,
) -> list[Document]:
    """Read every document under ``path``; see the module docstring for the layouts.

    ``on_error`` decides what a bad record does: ``STOP`` raises at the first
    one, ``SKIP`` logs it, leaves it out and counts it in ``report`` (if given).
    Unreadable PDFs are always skipped and counted. Empty inputs, duplicate
    ids under ``STOP`` and a corpus with no usable document raise
    :class:`~fieldtune.errors.InputError`.
    """
    root = Path(path).expanduser()
    sink = RecordSink(OnError(on_error))
    try:
        _dispatch(root, sink)
    finally:
        if report is not None:
            report.add(sink.report)
    return sink.finish(root)


def _dispatch(path: Path, sink: RecordSink) -> None:
    if not path.exists():
        raise InputError(path, "does not exist", hint="check the path, or create the corpus first")
    if path.is_dir():
        corpus = path / BEIR_CORPUS
        if corpus.is_file():
            _read_file(corpus, sink)
        else:
            read_folder(path, sink)
        return
    _read_file(path, sink)


def _read_file(path: Path, sink: RecordSink) -> None:
    file_format = FileFormat.from_path(path)
    try:
        if file_format is FileFormat.JSONL:
            read_jsonl_corpus(path, sink)
        elif file_format is FileFormat.CSV:
            read_csv(path, sink)
        elif file_format in DOCUMENT_FORMATS and path.is_file():
            if file_format is FileFormat.PDF:
                require_pypdf()
            read_document(path.parent, path, sink)
        else:
            suffix = path.suffix or "(no suffix)"
            raise InputError(
                path,
                f"unsupported file type {suffix}: expected {list_suffixes(FileFormat)} "
                f"(or a folder of {list_suffixes(DOCUMENT_FORMATS)} files, "
                f"or a BEIR folder with {BEIR_CORPUS})",
                hint="convert it to one of these formats",
            )
    except OSError as err:  # unreadable file, permission denied, ...
        raise InputError(path, f"cannot be read ({err.strerror or err})") from err
