"""Stage ``chunk``: cut documents into token-bounded chunks measured by the base model's tokenizer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fieldtune.chunking import chunk_documents, load_tokenizer
from fieldtune.config import BuildConfig
from fieldtune.hashing import path_sha256
from fieldtune.models import resolve_model
from fieldtune.stages.artifacts import CHUNKS, DOCUMENTS
from fieldtune.stages.base import Stage, StageContext
from fieldtune.workdir import write_jsonl


def tokenizer_fingerprint(model: str) -> str:
    """Identifies the tokenizer's files, so a changed tokenizer re-chunks the corpus."""
    ref = resolve_model(model)
    if ref.kind == "hub":
        return ref.location
    location = Path(ref.location)
    names = ("tokenizer.json", "vocab.txt", "tokenizer_config.json")
    files = [location / name for name in names if (location / name).exists()]
    return ":".join(path_sha256(f)[:16] for f in files) or path_sha256(location)


def run(ctx: StageContext) -> Mapping[str, Any]:
    documents = ctx.artifacts.documents()
    chunks = chunk_documents(documents, load_tokenizer(ctx.config.base), ctx.config.chunking)
    write_jsonl(ctx.output(CHUNKS), (chunk.to_dict() for chunk in chunks))
    tokens = [c.n_tokens for c in chunks]
    return {"chunks": len(chunks), "documents": len(documents), "max_tokens_seen": max(tokens, default=0),
            "mean_tokens": round(sum(tokens) / max(len(tokens), 1), 1)}


def _params(config: BuildConfig) -> Mapping[str, Any]:
    return {**asdict(config.chunking), "model": config.base, "tokenizer": tokenizer_fingerprint(config.base)}


STAGE = Stage(
    name="chunk",
    inputs=(DOCUMENTS,),
    outputs=(CHUNKS,),
    run=run,
    params=_params,
)
