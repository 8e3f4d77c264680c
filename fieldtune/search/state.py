"""The index directory: generations, the manifest that points at one, and locks.

Layout of an index directory::

    index.json              manifest: model, dimensions, storage, counts, and the
                            current generation (replaced atomically, never edited)
    segments/000001/        immutable chunk vectors + records (see store.py)
    generations/000003/     deleted_rows.npy, bm25/ and bm25_rows.npy of one state
    ann/000002.graph/       HNSW graph shards + graph.json (absent below the size threshold)
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
import functools
import json
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fieldtune.search.ann import AnnConfig, AnnIndex
from fieldtune.search.options import IndexNotFoundError, Storage
from fieldtune.search.store import Segment, VectorStore, save_array
from fieldtune.types import Document

MANIFEST = "index.json"
LOCK = ".lock"
SEGMENTS = "segments"
GENERATIONS = "generations"
ANN_DIR = "ann"
DELETED = "deleted_rows.npy"
BM25_DIR = "bm25"
BM25_ROWS = "bm25_rows.npy"
FORMAT = 1


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of the index at ``root``, or a clear error if there is none."""
    if not root.exists():
        raise IndexNotFoundError(
            f"{root}: no such index directory (build one with `fieldtune index`)"
        )
    path = root / MANIFEST
    if not path.is_file():
        raise IndexNotFoundError(
            f"{root}: not a fieldtune index (no {MANIFEST}); build one with `fieldtune index`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise IndexNotFoundError(f"{path}: unreadable manifest ({error})") from error
    if manifest.get("format") != FORMAT:
        raise IndexNotFoundError(
            f"{path}: index format {manifest.get('format')!r}, this fieldtune reads {FORMAT}"
        )
    return manifest


def manifest_stamp(root: Path) -> tuple[int, int, int] | None:
    """Changes whenever ``index.json`` is replaced (inode, mtime, size)."""
    try:
        stat = (root / MANIFEST).stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def load_current(root: Path, attempts: int = 3) -> IndexState:
    """Open the generation ``index.json`` names, retrying if a writer replaced it meanwhile."""
    for attempt in range(attempts):
        manifest = read_manifest(root)
        try:
            return IndexState.load(root, manifest)
        except FileNotFoundError:
            # Two updates were published while we read: our generation's files are gone.
            if attempt == attempts - 1 or read_manifest(root) == manifest:
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
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
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
    manifest: dict[str, Any]
    store: VectorStore
    deleted: np.ndarray  # bool per global row
    row_docs: np.ndarray  # global document ordinal per global row
    doc_ids: list[str]  # per global document ordinal
    doc_index: dict[str, int]  # live document id -> ordinal
    bm25: Any  # fieldtune.bm25.BM25Index | None
    bm25_rows: np.ndarray
    ann: AnnIndex | None

    @property
    def dimension(self) -> int:
        return int(self.manifest["dimension"])

    @functools.cached_property
    def deleted_rows(self) -> int:
        """Rows deleted but still stored (counted once: a state is never modified)."""
        return int(self.deleted.sum())

    @property
    def live_rows(self) -> int:
        return int(self.store.rows - self.deleted_rows)

    @classmethod
    def load(cls, root: Path, manifest: dict[str, Any]) -> IndexState:
        storage, dims = Storage(manifest["storage"]), list(manifest["dims"])
        segments = [Segment(root / s["name"], storage, dims) for s in manifest["segments"]]
        store = VectorStore(segments)
        generation = root / manifest["generation_dir"]
        deleted = np.zeros(store.rows, dtype=bool)
        deleted[np.load(generation / DELETED)] = True
        doc_ids: list[str] = []
        row_docs = np.empty(store.rows, dtype=np.int64)
        for offset, segment in zip(store.starts[:-1], segments, strict=True):
            row_docs[offset : offset + segment.rows] = np.asarray(segment.chunk_docs) + len(doc_ids)
            doc_ids.extend(segment.doc_ids)
        live = np.zeros(len(doc_ids), dtype=bool)
        live[row_docs[~deleted]] = True
        doc_index = {doc_ids[i]: i for i in np.flatnonzero(live).tolist()}
        bm25, bm25_rows = None, np.zeros(0, dtype=np.int64)
        if manifest.get("bm25"):
            from fieldtune.bm25 import BM25Index

            bm25 = BM25Index.load(generation / BM25_DIR)
            bm25_rows = np.load(generation / BM25_ROWS)
        ann = None
        if manifest["ann"].get("file"):
            ann = AnnIndex.open(
                root / manifest["ann"]["file"], AnnConfig.from_dict(manifest["ann"]["config"])
            )
        return cls(
            root, manifest, store, deleted, row_docs, doc_ids, doc_index, bm25, bm25_rows, ann
        )

    def chunk(self, row: int) -> dict[str, Any]:
        segment, local = self.store.locate(row)
        return segment.chunks[local]

    def document(self, ordinal: int) -> Document:
        for offset, segment in zip(self._doc_starts(), self.store.segments, strict=True):
            if ordinal < offset + len(segment.doc_ids):
                return Document.from_dict(segment.documents[ordinal - offset])
        raise IndexError(ordinal)

    def _doc_starts(self) -> list[int]:
        starts, total = [], 0
        for segment in self.store.segments:
            starts.append(total)
            total += len(segment.doc_ids)
        return starts

    def close(self) -> None:
        self.store.close()


def write_generation(
    root: Path, name: str, deleted_rows: np.ndarray, texts: list[str], text_rows: np.ndarray
) -> bool:
    """Write ``generations/<name>`` (tombstones, BM25 of live chunks); True if BM25 was built."""
    from fieldtune.bm25 import BM25Index

    final = root / GENERATIONS / name
    tmp = root / GENERATIONS / f".tmp-{name}-{os.getpid()}"
    for stale in (tmp, final):  # never referenced: we hold the writer lock and number generations
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        save_array(tmp / DELETED, np.asarray(sorted(deleted_rows), dtype=np.int64))
        if texts:
            BM25Index(texts).save(tmp / BM25_DIR)
            save_array(tmp / BM25_ROWS, np.asarray(text_rows, dtype=np.int64))
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return bool(texts)


def publish_directory(tmp: Path, final: Path) -> None:
    """Rename a finished directory into place (removing an unreferenced leftover first)."""
    shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.rename(tmp, final)


def referenced(manifest: dict[str, Any]) -> set[str]:
    """Paths (relative to the root) a manifest needs."""
    names = {s["name"] for s in manifest["segments"]} | {manifest["generation_dir"]}
    if manifest["ann"].get("file"):
        names.add(manifest["ann"]["file"])
    return names


def collect_garbage(root: Path, keep: list[dict[str, Any]]) -> list[str]:
    """Delete segments, generations and graphs that none of the ``keep`` manifests needs."""
    needed = set().union(*(referenced(m) for m in keep))
    removed = []
    for folder in (SEGMENTS, GENERATIONS, ANN_DIR):
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
