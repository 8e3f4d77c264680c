"""Writing index generations: the first build, adding documents, deleting documents.

Each function writes new files only (a segment for new chunks, a generation
directory, possibly a new HNSW graph) and finishes by atomically replacing
``index.json``; see :mod:`fieldtune.search.state` for the layout.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fieldtune import __version__
from fieldtune.chunking import ChunkingConfig, chunk_documents
from fieldtune.encoding import Encoder, Precision, document_text, truncate
from fieldtune.errors import InputError
from fieldtune.search.ann import AnnConfig, AnnIndex
from fieldtune.search.options import IndexExistsError, SearchOptionError, Storage
from fieldtune.search.state import (
    ANN_DIR,
    FORMAT,
    MANIFEST,
    SEGMENTS,
    IndexState,
    publish_directory,
    write_generation,
)
from fieldtune.search.store import Segment, VectorStore, write_segment
from fieldtune.types import Chunk, Document
from fieldtune.workdir import library_versions, write_json

logger = logging.getLogger("fieldtune.search")

DEFAULT_ANN_THRESHOLD = 20_000


@dataclass(frozen=True)
class BuildOptions:
    """Validated settings of ``Index.build``."""

    model: str
    chunking: ChunkingConfig
    storage: Storage
    ann_threshold: int
    dim: int | None
    precision: Precision
    progress: bool
    ann: AnnConfig = AnnConfig()

    @classmethod
    def create(
        cls,
        *,
        model: str,
        max_tokens: int,
        overlap: int,
        storage: str,
        ann_threshold: int,
        dim: int | None,
        precision: str,
        progress: bool,
    ) -> BuildOptions:
        chunking = ChunkingConfig(max_tokens, overlap)
        try:
            chunking.validate()
            precision_value = Precision(precision).resolved()
        except ValueError as error:
            raise SearchOptionError(str(error)) from error
        if not isinstance(ann_threshold, int) or ann_threshold < 0:
            raise SearchOptionError(
                f"ann_threshold must be a non-negative integer (got {ann_threshold!r})"
            )
        return cls(model, chunking, Storage(storage), ann_threshold, dim, precision_value, progress)


def check_documents(documents: list[Document], *, where: str) -> None:
    """Reject anything that is not a Document, empty ids and ids given twice."""
    seen: set[str] = set()
    for number, doc in enumerate(documents, 1):
        if not isinstance(doc, Document):
            raise InputError(
                where,
                f"expected fieldtune.types.Document, got {type(doc).__name__}",
                record=f"item {number}",
            )
        if not str(doc.id).strip():
            raise InputError(where, "empty document id", record=f"item {number}")
        if doc.id in seen:
            raise InputError(where, f"duplicate document id {doc.id!r}", record=f"item {number}")
        seen.add(doc.id)


def fit_dimension(vectors: np.ndarray, dimension: int) -> np.ndarray:
    """Model embeddings cut to the index's stored dimension (renormalised), if it is smaller."""
    return truncate(vectors, dimension) if vectors.shape[1] > dimension else vectors


def query_encoder(manifest: dict[str, Any]) -> Encoder:
    """The encoder an index was built with (bundled and hub models by name, local ones by path)."""
    model = manifest["model"]
    spec = model["location"] if model["kind"] == "local" else model["spec"]
    return Encoder(
        spec, precision=manifest.get("precision", "fp32"), use_cache=False, show_progress=False
    )


def _chunk_and_encode(
    documents: list[Document], encoder: Encoder, chunking: ChunkingConfig, dimension: int
) -> tuple[list[Chunk], np.ndarray]:
    started = time.perf_counter()
    chunks = chunk_documents(documents, encoder.model.tokenizer, chunking)
    logger.info(
        "chunked %d documents into %d chunks in %.1fs",
        len(documents),
        len(chunks),
        time.perf_counter() - started,
    )
    started = time.perf_counter()
    vectors = encoder.encode([document_text(c.title, c.text) for c in chunks], kind="document")
    logger.info("encoded %d chunks in %.1fs", len(chunks), time.perf_counter() - started)
    return chunks, fit_dimension(vectors, dimension)


def _write_new_segment(
    root: Path,
    name: str,
    documents: list[Document],
    chunks: list[Chunk],
    vectors: np.ndarray,
    manifest: dict[str, Any],
) -> Segment:
    storage, dims = Storage(manifest["storage"]), list(manifest["dims"])
    tmp = root / SEGMENTS / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_segment(tmp, documents, chunks, vectors, storage=storage, dims=dims)
        publish_directory(tmp, root / SEGMENTS / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Segment(root / SEGMENTS / name, storage, dims)


def _base_manifest(
    options: BuildOptions, encoder: Encoder, dimension: int, source: str
) -> dict[str, Any]:
    from fieldtune.evaluate.systems import default_dims

    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    versions = library_versions()
    try:
        from importlib.metadata import version

        versions["usearch"] = version("usearch")
    except Exception:  # noqa: BLE001 - optional dependency
        pass
    return {
        "format": FORMAT,
        "fieldtune_version": __version__,
        "created": now,
        "updated": now,
        "source": source,
        "model": {"spec": encoder.spec, "location": encoder.ref.location, "kind": encoder.ref.kind},
        "precision": options.precision.value,
        "model_dimension": encoder.dimension,
        "dimension": dimension,
        "dims": default_dims(dimension),
        "storage": options.storage.value,
        "chunking": {
            "max_tokens": options.chunking.max_tokens,
            "overlap": options.chunking.overlap,
        },
        "ann": {"threshold": options.ann_threshold, "config": options.ann.to_dict(), "file": None},
        "versions": versions,
    }


def build_index(
    corpus: str | Path | list[Document], out: Path, options: BuildOptions
) -> tuple[Path, Encoder]:
    """Write a complete index at ``out`` (built beside it, then renamed into place)."""
    from fieldtune.evaluate.systems import default_dims
    from fieldtune.ingest import read_corpus

    out = out.expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "an index" if (out / MANIFEST).exists() else "files"
        raise IndexExistsError(
            f"{out}: already holds {what}; choose a new --out or remove it (nothing was changed)"
        )
    if isinstance(corpus, (str, Path)):
        source, documents = str(corpus), read_corpus(corpus)
    else:
        source, documents = "<documents>", list(corpus)
        check_documents(documents, where="documents")
        if not documents:
            raise InputError("documents", "no documents to index")
    encoder = Encoder(options.model, precision=options.precision, show_progress=options.progress)
    model_dimension = encoder.dimension
    dimension = options.dim or model_dimension
    if dimension not in default_dims(model_dimension):
        allowed = ", ".join(str(d) for d in default_dims(model_dimension))
        raise SearchOptionError(f"dim must be one of: {allowed} (got {options.dim!r})")
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        manifest = _base_manifest(options, encoder, dimension, source)
        chunks, vectors = _chunk_and_encode(documents, encoder, options.chunking, dimension)
        segment = _write_new_segment(tmp, "000001", documents, chunks, vectors, manifest)
        store = VectorStore([segment])
        commit(tmp, manifest, store, np.zeros(store.rows, dtype=bool), generation=1)
        store.close()
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("index of %d documents, %d chunks written to %s", len(documents), len(chunks), out)
    return out, encoder


def add_documents(
    root: Path, state: IndexState, documents: list[Document], encoder: Encoder
) -> dict[str, Any]:
    """Publish a generation with ``documents`` added (same ids replaced); return its manifest."""
    manifest = state.manifest
    chunking = ChunkingConfig(**manifest["chunking"])
    chunks, vectors = _chunk_and_encode(documents, encoder, chunking, state.dimension)
    generation = int(manifest["generation"]) + 1
    segment = _write_new_segment(root, f"{generation:06d}", documents, chunks, vectors, manifest)
    store = VectorStore([*state.store.segments, segment])
    deleted = np.zeros(store.rows, dtype=bool)
    deleted[: state.store.rows] = state.deleted
    replaced = {state.doc_index[d.id] for d in documents if d.id in state.doc_index}
    if replaced:
        old = np.isin(state.row_docs, list(replaced))
        deleted[: state.store.rows] |= old
    newly_deleted = np.flatnonzero(deleted[: state.store.rows] & ~state.deleted)
    return commit(
        root,
        manifest,
        store,
        deleted,
        generation=generation,
        previous=state,
        newly_deleted=newly_deleted,
    )


def delete_documents(root: Path, state: IndexState, ordinals: list[int]) -> dict[str, Any]:
    """Publish a generation without the documents ``ordinals``; returns its manifest."""
    doomed = np.isin(state.row_docs, ordinals) & ~state.deleted
    deleted = state.deleted | doomed
    generation = int(state.manifest["generation"]) + 1
    return commit(
        root,
        state.manifest,
        state.store,
        deleted,
        generation=generation,
        previous=state,
        newly_deleted=np.flatnonzero(doomed),
    )


def _live_texts(store: VectorStore, deleted: np.ndarray) -> tuple[list[str], list[int]]:
    from fieldtune.workdir import read_jsonl

    texts, rows = [], []
    for offset, segment in zip(store.starts[:-1].tolist(), store.segments, strict=True):
        for local, record in enumerate(read_jsonl(segment.chunks.path)):
            if not deleted[offset + local]:
                texts.append(document_text(record.get("title", ""), record["text"]))
                rows.append(offset + local)
    return texts, rows


def live_batches(
    store: VectorStore, deleted: np.ndarray, first_row: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(global rows, unit vectors) of live rows at or after ``first_row``, block by block."""
    for offset, segment, start, stop in store.blocks():
        keys = np.arange(offset, offset + stop - start)
        keep = ~deleted[keys] & (keys >= first_row)
        if keep.any():
            yield keys[keep], segment.dequantized(start, stop)[keep]


def _graph(
    root: Path,
    name: str,
    manifest: dict[str, Any],
    store: VectorStore,
    deleted: np.ndarray,
    previous: IndexState | None,
    newly_deleted: np.ndarray,
) -> str | None:
    """The HNSW graph file of the new generation, or None below the size threshold."""
    ann = manifest["ann"]
    live = int(store.rows - deleted.sum())
    if live <= int(ann["threshold"]):
        return None
    old = previous.ann if previous is not None else None
    if old is not None and previous is not None and previous.store.rows == store.rows:
        return ann[
            "file"
        ]  # delete only: the old graph stays, deleted rows are filtered at search time
    started = time.perf_counter()
    if old is not None and previous is not None and old.scale is not None:
        graph = old.writable_copy()
        graph.remove(newly_deleted)
        graph.add_batches(live_batches(store, deleted, previous.store.rows))
    else:  # no graph yet, or one of format 1 (float-converted), which is rebuilt
        graph = AnnIndex.build(
            int(manifest["dimension"]),
            live_batches(store, deleted),
            AnnConfig.from_dict(ann["config"]),
            rows=live,
        )
    relative = f"{ANN_DIR}/{name}.graph"
    graph.save(root / relative)
    logger.info("HNSW graph of %d rows written in %.1fs", len(graph), time.perf_counter() - started)
    return relative


def commit(
    root: Path,
    manifest: dict[str, Any],
    store: VectorStore,
    deleted: np.ndarray,
    *,
    generation: int,
    previous: IndexState | None = None,
    newly_deleted: np.ndarray | None = None,
) -> dict[str, Any]:
    """Write generation ``generation`` (tombstones, BM25, graph) and then the manifest naming it."""
    name = f"{generation:06d}"
    texts, rows = _live_texts(store, deleted)
    has_bm25 = write_generation(
        root, name, np.flatnonzero(deleted), texts, np.asarray(rows, dtype=np.int64)
    )
    empty = np.zeros(0, dtype=np.int64)
    ann_file = _graph(
        root,
        name,
        manifest,
        store,
        deleted,
        previous,
        empty if newly_deleted is None else newly_deleted,
    )
    live_docs = _live_documents(store, deleted)
    new = {
        **manifest,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "generation": generation,
        "generation_dir": f"generations/{name}",
        "segments": [
            {"name": f"{SEGMENTS}/{s.directory.name}", "rows": s.rows, "documents": len(s.doc_ids)}
            for s in store.segments
        ],
        "bm25": has_bm25,
        "ann": {**manifest["ann"], "file": ann_file},
        "counts": {
            "documents": live_docs,
            "chunks": len(rows),
            "rows": store.rows,
            "deleted_rows": int(deleted.sum()),
            "segments": len(store.segments),
        },
    }
    write_json(root / MANIFEST, new)
    return new


def _live_documents(store: VectorStore, deleted: np.ndarray) -> int:
    total, live = 0, 0
    for offset, segment in zip(store.starts[:-1].tolist(), store.segments, strict=True):
        docs = np.asarray(segment.chunk_docs)[~deleted[offset : offset + segment.rows]]
        live += len(np.unique(docs))
        total += len(segment.doc_ids)
    return live
