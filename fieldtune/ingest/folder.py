"""Read a folder of documents: one document per .txt, .md, .tex or .pdf file.

Files are found recursively and read in sorted order of their relative paths;
hidden files and folders (names starting with ".") are left alone, as are
files of other types. A document's id is its relative path without the
suffix (``notes/intro`` for ``notes/intro.md``), so the same folder always
yields the same ids.
"""

from __future__ import annotations

import codecs
import os
import re
from collections import Counter
from pathlib import Path

from fieldtune.errors import InputError
from fieldtune.ingest.common import (
    DOCUMENT_FORMATS,
    UTF8_FIX,
    FileFormat,
    RecordSink,
    list_suffixes,
    utf8_problem,
)
from fieldtune.ingest.pdf import UnreadablePdf, extract_pdf_text, require_pypdf
from fieldtune.types import Document

_MD_HEADING = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_MD_FENCE = ("```", "~~~")
_TEX_TITLE = re.compile(r"\\title\s*(?:\[[^\]]*\])?\s*\{")


def list_documents(root: Path) -> tuple[list[Path], Counter[str]]:
    """Supported files under ``root`` in sorted order, and a count of the others by suffix."""
    found: list[Path] = []
    ignored: Counter[str] = Counter()
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            file = Path(folder) / name
            if FileFormat.from_path(file) in DOCUMENT_FORMATS:
                found.append(file)
            else:
                ignored[file.suffix.lower() or "(no suffix)"] += 1
    found.sort(key=lambda file: file.relative_to(root).as_posix())
    return found, ignored


def read_folder(root: Path, sink: RecordSink) -> None:
    """Hand one document per supported file under ``root`` to ``sink``."""
    files, ignored = list_documents(root)
    if not files:
        problem = f"is empty: no corpus.jsonl and no {list_suffixes(DOCUMENT_FORMATS)} files"
        if ignored:
            others = ", ".join(f"{count} {suffix}" for suffix, count in sorted(ignored.items()))
            problem += f" (ignored: {others})"
        raise InputError(
            root, problem, hint="point fieldtune at the folder that holds your documents"
        )
    if any(FileFormat.from_path(file) is FileFormat.PDF for file in files):
        require_pypdf()  # fail before reading anything, not at the first PDF
    for file in files:
        read_document(root, file, sink)


def read_document(root: Path, file: Path, sink: RecordSink) -> None:
    """Hand the document in ``file`` (somewhere under ``root``) to ``sink``."""
    relative = file.relative_to(root)
    file_format = FileFormat.from_path(file)
    if file_format is None or file_format not in DOCUMENT_FORMATS:
        raise ValueError(f"not a document file: {file}")  # callers filter by suffix first
    title = file.stem
    if file_format is FileFormat.PDF:
        try:
            text = extract_pdf_text(file)
        except UnreadablePdf as err:
            sink.unreadable_pdf(file, str(err))
            return
    else:
        decoded = _read_text(file, sink)
        if decoded is None:
            return
        text = decoded
        if file_format is FileFormat.TEX:
            text = strip_tex_comments(text)
            title = tex_title(text) or title
        elif file_format is FileFormat.MD:
            title = markdown_title(text) or title
        if not text.strip():
            sink.bad(file, "is empty", fix="add text to it or delete it")
            return
    document = Document(
        id=relative.with_suffix("").as_posix(),
        text=text,
        title=title,
        metadata={"path": relative.as_posix(), "format": file_format.value},
        source=str(file),
    )
    sink.add(document, file)


def _read_text(file: Path, sink: RecordSink) -> str | None:
    """The file's text, or None when it was reported as bad (and skipped)."""
    try:
        data = file.read_bytes()
    except OSError as err:
        sink.bad(file, f"cannot be read ({err.strerror or err})", cause=err)
        return None
    base = 0
    if data.startswith(codecs.BOM_UTF8):
        base = len(codecs.BOM_UTF8)
        data = data[base:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        problem = utf8_problem(err, base)
        sink.bad(file, problem, record=f"line {line}", fix=UTF8_FIX, cause=err)
        return None


def markdown_title(text: str) -> str:
    """The text of the first ``# `` heading outside code fences, or ``""``."""
    in_fence = False
    for line in text.splitlines():
        if line.lstrip().startswith(_MD_FENCE):
            in_fence = not in_fence
            continue
        match = None if in_fence else _MD_HEADING.match(line)
        if match:
            return match.group(1).strip()
    return ""


def strip_tex_comments(text: str) -> str:
    """Drop ``%`` comments (an unescaped ``%`` to the end of its line).

    ``\\%`` is a literal percent sign and stays; lines that held only a
    comment are removed, so they do not turn into paragraph breaks.
    """
    return "".join(_strip_tex_line(line) for line in text.splitlines(keepends=True))


def _strip_tex_line(line: str) -> str:
    start = 0
    while (index := line.find("%", start)) != -1:
        backslashes = len(line[:index]) - len(line[:index].rstrip("\\"))
        if backslashes % 2 == 0:
            kept = line[:index]
            if not kept.strip():
                return ""
            return kept.rstrip() + line[len(line.rstrip("\r\n")) :]
        start = index + 1
    return line


def tex_title(text: str) -> str:
    """The argument of the first ``\\title{...}`` (braces balanced), whitespace collapsed."""
    match = _TEX_TITLE.search(text)
    if match is None:
        return ""
    depth, index = 1, match.end()
    while index < len(text) and depth:
        char = text[index]
        if char == "\\":
            index += 2
            continue
        depth += (char == "{") - (char == "}")
        index += 1
    if depth:
        return ""
    inner = text[match.end() : index - 1]
    return " ".join(inner.replace("\\\\", " ").split())
