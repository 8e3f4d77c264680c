"""Writing index generations: the first build, adding documents, deleting documents.

Each function writes new files only (a segment for new chunks, a generation
directory, possibly new files of the dense backend, see
:mod:`fieldtune.search.backends`) and finishes by atomically replacing
``index.json``; see :mod:`fieldtune.search.state` for the layout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from fieldtune.chunking import ChunkingConfig, chunk_documents
from fieldtune.encoders import ray as ray_backend
from fieldtune.encoding import Encoder, Precision, document_text, truncate
from fieldtune.errors import InputError
from fieldtune.evaluate.systems import default_dims
from fieldtune.ingest import read_corpus
from fieldtune.model_record import GateRecord
from fieldtune.search import pgsql
from fieldtune.search.ann import AnnConfig
from fieldtune.search.backends import StoredVectors, next_backend, pgvector
from fieldtune.search.manifest import (
    INDEX_MANIFEST,
    DenseSettings,
    IndexCounts,
    IndexedModel,
    IndexManifest,
    SegmentEntry,
)
from fieldtune.search.options import IndexExistsError, SearchOptionError, Storage, Store, check_dim
from fieldtune.search.state import (
    SEGMENTS,
    IndexState,
    staged_directory,
    write_generation,
)
from fieldtune.search.store import Segment, VectorStore, write_segment
from fieldtune.types import Chunk, Document
from fieldtune.version import __version__
from fieldtune.workdir import library_versions

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
    store: Store = Store.LOCAL
    dsn: str | None = None
    #: encode the corpus on Ray (local or a cluster, see :mod:`fieldtune.encoders.ray`); None: in this process
    ray: ray_backend.RaySettings | None = None

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
        store: str = "local",
        dsn: str | None = None,
        ray: ray_backend.RaySettings | None = None,
    ) -> BuildOptions:
        chunking = ChunkingConfig(max_tokens, overlap)
        try:
            chunking.validate()
            precision_value = Precision(precision)  # auto is settled by the encoder, for the corpus's size
        except ValueError as error:
            raise SearchOptionError(str(error)) from error
        if not isinstance(ann_threshold, int) or ann_threshold < 0:
            raise SearchOptionError(
                f"ann_threshold must be a non-negative integer (got {ann_threshold!r})"
            )
        store_value = Store(store)
        dsn = dsn or os.environ.get(pgsql.DSN_ENV)
        if store_value is Store.PGVECTOR and not (dsn or "").strip():
            raise SearchOptionError(
                f"--store pgvector needs --dsn (a PostgreSQL connection string) or ${pgsql.DSN_ENV}"
            )
        return cls(
            model, chunking, Storage(storage), ann_threshold, dim, precision_value, progress,
            store=store_value, dsn=dsn if store_value is Store.PGVECTOR else None, ray=ray,
        )


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
    manifest: IndexManifest,
) -> Segment:
    dims = list(manifest.dims)
    with staged_directory(root / SEGMENTS / name) as tmp:
        write_segment(tmp, documents, chunks, vectors, storage=manifest.storage, dims=dims)
    return Segment(root / SEGMENTS / name, manifest.storage, dims)


def _base_manifest(
    options: BuildOptions, encoder: Encoder, dimension: int, source: str
) -> IndexManifest:
    """The manifest of a new index before its first generation is committed."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    dims = default_dims(dimension)
    if options.store is Store.PGVECTOR and options.dsn:
        ann = pgvector.settings(options.dsn, options.ann_threshold, dims)
    else:
        ann = DenseSettings(options.ann_threshold, options.ann.to_dict())
    versions = library_versions()
    with contextlib.suppress(PackageNotFoundError):  # usearch is an optional dependency
        versions["usearch"] = version("usearch")
    return IndexManifest(
        fieldtune_version=__version__,
        created=now,
        updated=now,
        source=source,
        model=IndexedModel(encoder.spec, encoder.ref.location, encoder.ref.kind),
        precision=encoder.precision.value,
        model_dimension=encoder.dimension,
        dimension=dimension,
        dims=tuple(dims),
        storage=options.storage,
        chunking={"max_tokens": options.chunking.max_tokens, "overlap": options.chunking.overlap},
        ann=ann,
        versions=versions,
        dense_weight=_chosen_dense_weight(encoder),
    )


def _chosen_dense_weight(encoder: Encoder) -> float | None:
    """The fusion weight the model's build chose on its dev queries (gate.json), if it is a build's model."""
    if encoder.ref.kind == "hub":
        return None
    record = GateRecord.read(encoder.ref.location)
    return record.dense_weight if record is not None else None


def build_index(
    corpus: str | Path | list[Document], out: Path, options: BuildOptions
) -> tuple[Path, Encoder]:
    """Write a complete index at ``out`` (built beside it, then renamed into place)."""
    out = out.expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "an index" if (out / INDEX_MANIFEST).exists() else "files"
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
    if options.ray is not None:
        if options.ray.address:  # before the cache can spare every encode and hide a wrong address
            ray_backend.check_reachable(options.ray.address)
        ray_backend.configure(options.ray)
    encoder = Encoder(options.model, precision=options.precision, show_progress=options.progress,
                      backend="ray" if options.ray is not None else None)
    encoder.prepare(len(documents))  # auto settles for this corpus (int8 where it pays) before anything is recorded
    dimension = check_dim(options.dim or None, default_dims(encoder.dimension))
    with staged_directory(out, out.parent / f".{out.name}.building-{os.getpid()}") as tmp:
        manifest = _base_manifest(options, encoder, dimension, source)
        chunks, vectors = _chunk_and_encode(documents, encoder, options.chunking, dimension)
        if options.ray is not None and options.ray.shards is not None:
            ray_backend.write_shards(options.ray.shards, [chunk.id for chunk in chunks], vectors)
        segment = _write_new_segment(tmp, "000001", documents, chunks, vectors, manifest)
        store = VectorStore([segment])
        commit(tmp, manifest, store, np.zeros(store.rows, dtype=bool))
        store.close()
        if out.exists():
            out.rmdir()  # the empty directory we were given; fails if anything appeared in it
    logger.info("index of %d documents, %d chunks written to %s", len(documents), len(chunks), out)
    return out, encoder


def add_documents(
    root: Path, state: IndexState, documents: list[Document], encoder: Encoder
) -> IndexManifest:
    """Publish a generation with ``documents`` added (same ids replaced); return its manifest."""
    manifest = state.manifest
    chunking = ChunkingConfig(**manifest.chunking)
    chunks, vectors = _chunk_and_encode(documents, encoder, chunking, state.dimension)
    name = f"{manifest.generation + 1:06d}"
    segment = _write_new_segment(root, name, documents, chunks, vectors, manifest)
    store = VectorStore([*state.store.segments, segment])
    deleted = np.zeros(store.rows, dtype=bool)
    deleted[: state.store.rows] = state.deleted
    replaced = {state.doc_index[d.id] for d in documents if d.id in state.doc_index}
    if replaced:
        deleted[: state.store.rows] |= np.isin(state.row_docs, list(replaced))
    return commit(root, manifest, store, deleted, previous=state)


def delete_documents(root: Path, state: IndexState, ordinals: list[int]) -> IndexManifest:
    """Publish a generation without the documents ``ordinals``; returns its manifest."""
    deleted = state.deleted | np.isin(state.row_docs, ordinals)
    return commit(root, state.manifest, state.store, deleted, previous=state)


def _live_texts(store: VectorStore, deleted: np.ndarray) -> tuple[list[str], list[int]]:
    texts, rows = [], []
    for offset, segment in store.offsets():
        for local, record in enumerate(segment.chunks):
            if not deleted[offset + local]:
                texts.append(document_text(record.get("title", ""), record["text"]))
                rows.append(offset + local)
    return texts, rows


def _live_documents(store: VectorStore, deleted: np.ndarray) -> int:
    live = 0
    for offset, segment in store.offsets():
        docs = np.asarray(segment.chunk_docs)[~deleted[offset : offset + segment.rows]]
        live += len(np.unique(docs))
    return live


def commit(
    root: Path,
    manifest: IndexManifest,
    store: VectorStore,
    deleted: np.ndarray,
    *,
    previous: IndexState | None = None,
) -> IndexManifest:
    """Write the generation after ``manifest``'s (tombstones, BM25, dense backend files), then
    the manifest naming it. ``previous``: the generation it updates (None for a new index)."""
    generation = manifest.generation + 1
    name = f"{generation:06d}"
    texts, rows = _live_texts(store, deleted)
    has_bm25 = write_generation(
        root, name, np.flatnonzero(deleted), texts, np.asarray(rows, dtype=np.int64)
    )
    vectors = StoredVectors(store, deleted, manifest.dimension)
    if previous is None:
        backend = next_backend(manifest.ann, vectors)
    else:
        old_rows = previous.store.rows
        backend = next_backend(
            manifest.ann,
            vectors,
            previous.backend,
            first_new_row=old_rows,
            removed=np.flatnonzero(deleted[:old_rows] & ~previous.deleted),
        )
    new = replace(
        manifest,
        updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        generation=generation,
        generation_dir=f"generations/{name}",
        segments=tuple(
            SegmentEntry(f"{SEGMENTS}/{s.directory.name}", s.rows, len(s.doc_ids))
            for s in store.segments
        ),
        bm25=has_bm25,
        ann=replace(manifest.ann, file=backend.save(root, name)),
        counts=IndexCounts(
            documents=_live_documents(store, deleted),
            chunks=len(rows),
            rows=store.rows,
            deleted_rows=int(deleted.sum()),
            segments=len(store.segments),
        ),
    )
    new.write(root)
    return new
