"""Stages over the work directory: ingest -> chunk (more stages join as they land).

Each stage is a plain function over typed records; :func:`ingest_and_chunk`
composes them through :class:`WorkDir`, which skips a stage whose inputs and
parameters are unchanged and never replaces an artifact with a partial one.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fieldtune.chunking import ChunkingConfig, chunk_documents, load_tokenizer
from fieldtune.ingest import IngestReport, OnError, read_corpus
from fieldtune.models import DEFAULT_MODEL, resolve_model
from fieldtune.types import Chunk, Document
from fieldtune.workdir import StageResult, WorkDir, path_sha256, read_jsonl, write_jsonl

logger = logging.getLogger("fieldtune.pipeline")

DOCUMENTS = "documents.jsonl"
CHUNKS = "chunks.jsonl"


@dataclass(frozen=True)
class IngestConfig:
    model: str = DEFAULT_MODEL
    chunking: ChunkingConfig = ChunkingConfig()
    on_error: OnError = OnError.STOP


def corpus_input(path: str | Path) -> Path:
    """The file(s) whose content defines the corpus: a BEIR directory is only its corpus.jsonl."""
    path = Path(path)
    return path / "corpus.jsonl" if path.is_dir() and (path / "corpus.jsonl").is_file() else path


def _tokenizer_fingerprint(model: str) -> str:
    ref = resolve_model(model)
    if ref.kind == "hub":
        return ref.location
    location = Path(ref.location)
    files = [location / name for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json") if (location / name).exists()]
    return ":".join(path_sha256(f)[:16] for f in files) or path_sha256(location)


def ingest_stage(workdir: WorkDir, corpus: str | Path, on_error: OnError) -> StageResult:
    def build() -> dict[str, Any]:
        report = IngestReport()
        documents = read_corpus(corpus, on_error=on_error, report=report)
        write_jsonl(workdir.path(DOCUMENTS), (doc.to_dict() for doc in documents))
        logger.info("ingest: %s", report.summary())
        return {"documents": len(documents), "report": report.summary()}

    from fieldtune.errors import InputError

    if not Path(corpus).exists():
        raise InputError(corpus, "does not exist")
    return workdir.run_stage(
        "ingest", inputs={"corpus": corpus_input(corpus)}, params={"on_error": on_error.value},
        outputs=[DOCUMENTS], build=build,
    )


def chunk_stage(workdir: WorkDir, model: str, config: ChunkingConfig) -> StageResult:
    config.validate()

    def build() -> dict[str, Any]:
        documents = load_documents(workdir)
        chunks = chunk_documents(documents, load_tokenizer(model), config)
        write_jsonl(workdir.path(CHUNKS), (chunk.to_dict() for chunk in chunks))
        tokens = [c.n_tokens for c in chunks]
        return {"chunks": len(chunks), "documents": len(documents), "max_tokens_seen": max(tokens, default=0),
                "mean_tokens": round(sum(tokens) / max(len(tokens), 1), 1)}

    return workdir.run_stage(
        "chunk", inputs={"documents": workdir.path(DOCUMENTS)},
        params={**asdict(config), "model": model, "tokenizer": _tokenizer_fingerprint(model)},
        outputs=[CHUNKS], build=build,
    )


def ingest_and_chunk(corpus: str | Path, out: str | Path, config: IngestConfig | None = None) -> list[StageResult]:
    config = config or IngestConfig()
    workdir = WorkDir(out)
    return [ingest_stage(workdir, corpus, config.on_error), chunk_stage(workdir, config.model, config.chunking)]


def load_documents(workdir: WorkDir) -> list[Document]:
    return [Document.from_dict(record) for record in read_jsonl(workdir.path(DOCUMENTS))]


def load_chunks(workdir: WorkDir) -> list[Chunk]:
    return [Chunk.from_dict(record) for record in read_jsonl(workdir.path(CHUNKS))]
