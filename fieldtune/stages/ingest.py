"""Stage ``ingest``: read the corpus (BEIR directory, .jsonl, .csv or a folder) into documents.jsonl."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fieldtune.config import BuildConfig
from fieldtune.errors import FieldtuneError, InputError
from fieldtune.ingest import IngestReport, read_corpus
from fieldtune.stages.artifacts import DOCUMENTS
from fieldtune.stages.base import Stage, StageContext
from fieldtune.workdir import write_jsonl

logger = logging.getLogger("fieldtune.stages.ingest")


class CorpusTooSmallError(FieldtuneError):
    """Too little text to learn anything from."""


def corpus_input(path: str | Path) -> Path:
    """The file(s) whose content defines the corpus: a BEIR directory is only its corpus.jsonl."""
    path = Path(path)
    return path / "corpus.jsonl" if path.is_dir() and (path / "corpus.jsonl").is_file() else path


def _sources(config: BuildConfig, corpus: Path) -> Mapping[str, Path]:
    if not corpus.exists():
        raise InputError(corpus, "does not exist")
    return {"corpus": corpus_input(corpus)}


def run(ctx: StageContext) -> Mapping[str, Any]:
    report = IngestReport()
    documents = read_corpus(ctx.corpus, on_error=ctx.config.on_error, report=report)
    # Checked before anything is written: a corpus too small to build from leaves the work directory as it was.
    if len(documents) < ctx.config.min_documents:
        raise CorpusTooSmallError(
            f"{ctx.corpus}: {len(documents)} documents; fieldtune needs at least {ctx.config.min_documents} "
            "to build a model (a few hundred is better)"
        )
    write_jsonl(ctx.output(DOCUMENTS), (doc.to_dict() for doc in documents))
    logger.info("ingest: %s", report.summary())
    return {"documents": len(documents), "report": report.summary()}


STAGE = Stage(
    name="ingest",
    inputs=(),
    outputs=(DOCUMENTS,),
    run=run,
    params=lambda config: {"on_error": config.on_error.value, "min_documents": config.min_documents},
    sources=_sources,
)
