"""The index directory: generations, opening the one ``index.json`` names, and locks.

Layout of an index directory::

    index.json              manifest (manifest.py): model, dimensions, storage, counts,
                            and the current generation (replaced atomically, never edited)
    segments/000001/        immutable chunk vectors + records (see store.py)
    generations/000003/     deleted_rows.npy, bm25/ and bm25_rows.npy of one state
    ann/000002.graph/       files of the dense backend, if it keeps any (the usearch HNSW
                            shards + graph.json above the size threshold; see backends/)
    query-models/000001/    query encoders swapped in by `fieldtune adapt` (query_models.py);
                            index.json's query_model names the one searches use
    .lock                   taken by writers (flock), so two processes never write at once

An update (``add``/``delete``) writes everything it changes under new names,
then renames a new ``index.json`` over the old one: a reader sees either the
old generation or the new one, never a mix. The files of the previous
generation are kept, so a process that read the old manifest a moment ago
can still open them; older ones are deleted (POSIX keeps memory-mapped and
open files readable after deletion, so live readers are unaffected).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fieldtune.bm25 import BM25Index
from fieldtune.search.backends import BACKEND_DIR, StoredVectors, VectorBackend, open_backend
from fieldtune.search.manifest import INDEX_MANIFEST, IndexManifest
from fieldtune.search.store import Segment, VectorStore, index_file, load_array, save_array
from fieldtune.types import Document

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock
    fcntl = None  # type: ignore[assignment]

LOCK = ".lock"
SEGMENTS = "segments"
GENERATIONS = "generations"
DELETED = "deleted_rows.npy"
BM25_DIR = "bm25"
BM25_ROWS = "bm25_rows.npy"


def manifest_stamp(root: Path) -> tuple[int, int, int] | None:
    """Changes whenever ``index.json`` is replaced (inode, mtime, size)."""
    try:
        stat = (root / INDEX_MANIFEST).stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def load_current(root: Path, attempts: int = 3) -> IndexState:
    """Open the generation ``index.json`` names, retrying if a writer replaced it meanwhile.

    A file still missing after the retries, or a damaged one, raises an error
    that names it and says to rebuild the index (see :mod:`fieldtune.search.store`).
    """
    for attempt in range(attempts):
        manifest = IndexManifest.read(root)
        try:
            return IndexState.load(root, manifest)
        except FileNotFoundError:
            # Two updates were published while we read: our generation's files are gone.
            if attempt == attempts - 1 or IndexManifest.read(root) == manifest:
                raise
    raise AssertionError("unreachable")


class RWLock:
    """Many readers or one writer; a waiting writer holds off new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


@contextlib.contextmanager
def file_lock(root: Path) -> Iterator[None]:
    """An exclusive lock on ``root/.lock`` across processes (a no-op where flock is missing)."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    with open(root / LOCK, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@dataclass
class IndexState:
    """One generation opened: everything a search reads, never modified after loading."""

    root: Path
    manifest: IndexManifest
    vectors: StoredVectors
    row_docs: np.ndarray  # global document ordinal per global row
    doc_ids: list[str]  # per global document ordinal
    doc_index: dict[str, int]  # live document id -> ordinal
    bm25: BM25Index | None
    bm25_rows: np.ndarray
    backend: VectorBackend

    @property
    def dimension(self) -> int:
        return self.manifest.dimension

    @property
    def store(self) -> VectorStore:
        return self.vectors.store

    @property
    def deleted(self) -> np.ndarray:
        """Bool per global row: deleted but still stored."""
        return self.vectors.deleted

    @property
    def live_rows(self) -> int:
        return self.vectors.live_rows

    @classmethod
    def load(cls, root: Path, manifest: IndexManifest) -> IndexState:
        dims = list(manifest.dims)
        segments = [Segment(root / s.name, manifest.storage, dims) for s in manifest.segments]
        store = VectorStore(segments)
        generation = root / manifest.generation_dir
        deleted = np.zeros(store.rows, dtype=bool)
        deleted[load_array(generation / DELETED, mmap=False)] = True
        vectors = StoredVectors(store, deleted, manifest.dimension)
        doc_ids: list[str] = []
        row_docs = np.empty(store.rows, dtype=np.int64)
        for offset, segment in store.offsets():
            row_docs[offset : offset + segment.rows] = np.asarray(segment.chunk_docs) + len(doc_ids)
            doc_ids.extend(segment.doc_ids)
        live = np.zeros(len(doc_ids), dtype=bool)
        live[row_docs[~deleted]] = True
        doc_index = {doc_ids[i]: i for i in np.flatnonzero(live).tolist()}
        bm25, bm25_rows = None, np.zeros(0, dtype=np.int64)
        if manifest.bm25:
            with index_file(generation / BM25_DIR):
                bm25 = BM25Index.load(generation / BM25_DIR)
            bm25_rows = load_array(generation / BM25_ROWS, mmap=False)
        with index_file(root / BACKEND_DIR):
            backend = open_backend(root, manifest.ann, vectors)
        return cls(root, manifest, vectors, row_docs, doc_ids, doc_index, bm25, bm25_rows, backend)

    def chunk(self, row: int) -> dict[str, Any]:
        segment, local = self.store.locate(row)
        return segment.chunks[local]

    def document(self, ordinal: int) -> Document:
        first = 0
        for segment in self.store.segments:
            if ordinal < first + len(segment.doc_ids):
                return Document.from_dict(segment.documents[ordinal - first])
            first += len(segment.doc_ids)
        raise IndexError(ordinal)

    def close(self) -> None:
        self.store.close()


@contextlib.contextmanager
def staged_directory(final: Path, tmp: Path | None = None) -> Iterator[Path]:
    """An empty directory to fill, renamed to ``final`` when the block ends, removed if it fails.

    Every directory of an index (and the index itself) is written this way,
    so a reader or a later run never sees a half-written one. ``final`` must
    be a name no manifest references: a leftover there (from a run that
    failed after renaming) is replaced.
    """
    tmp = tmp or final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_generation(
    root: Path, name: str, deleted_rows: np.ndarray, texts: list[str], text_rows: np.ndarray
) -> bool:
    """Write ``generations/<name>`` (tombstones, BM25 of live chunks); True if BM25 was built."""
    # The name is never referenced yet: we hold the writer lock and number generations.
    with staged_directory(root / GENERATIONS / name) as tmp:
        save_array(tmp / DELETED, np.asarray(sorted(deleted_rows), dtype=np.int64))
        if texts:
            BM25Index(texts).save(tmp / BM25_DIR)
            save_array(tmp / BM25_ROWS, np.asarray(text_rows, dtype=np.int64))
    return bool(texts)


def collect_garbage(root: Path, keep: list[IndexManifest]) -> list[str]:
    """Delete segments, generations and backend files that none of the ``keep`` manifests needs."""
    needed = set().union(*(m.referenced() for m in keep))
    removed = []
    for folder in (SEGMENTS, GENERATIONS, BACKEND_DIR):
        directory = root / folder
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            relative = f"{folder}/{entry.name}"
            if relative in needed:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
            removed.append(relative)
    return removed
