"""On-disk storage of index segments: compact embeddings and chunk/document records.

A *segment* is an immutable directory written once by a build or an ``add``:

``vectors.npy``
    the chunk embeddings, one row per chunk. With ``int8`` storage each row is
    quantized symmetrically with its own scale (``scale = max|v| / 127``,
    ``q = round(v / scale)``), kept in ``scales.npy`` (float32); with
    ``float16`` the rows are stored as half floats and there is no scale.
    Per-vector scales suit unit-norm embeddings whose largest component
    varies from row to row; the error on a cosine is about 5e-4.
``norms.npy``
    float32, one column per allowed Matryoshka dimension: the norm of the
    dequantized prefix ``v[:dim]``, so a truncated cosine needs no pass over
    the vectors to renormalise them.
``chunks.jsonl`` / ``documents.jsonl``
    the records, with ``*.offsets.npy`` byte offsets so a result's passage is
    read with one ``pread`` instead of loading every text into memory.
``chunk_docs.npy`` / ``doc_ids.json``
    which document (segment-local ordinal) each chunk belongs to, and the
    documents' ids in order.

Every array is opened with ``np.load(mmap_mode="r")``: pages are read on
demand and shared between processes, and nothing is copied into memory.
A missing or damaged file raises :class:`MissingIndexFileError` or
:class:`DamagedIndexError`, which name the file and say to rebuild the index
(the command line prints them without a traceback).
For 384 dimensions an int8 row takes 384 + 4 (scale) + 4 x 4 (norms) = 404
bytes, 26% of the 1,536 bytes of float32.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fieldtune.errors import FieldtuneError
from fieldtune.search.options import Storage
from fieldtune.types import Chunk, Document
from fieldtune.workdir import atomic_write

VECTORS = "vectors.npy"
SCALES = "scales.npy"
NORMS = "norms.npy"
SEGMENT_CHUNKS = "chunks.jsonl"
SEGMENT_DOCUMENTS = "documents.jsonl"
CHUNK_DOCS = "chunk_docs.npy"
DOC_IDS = "doc_ids.json"
OFFSETS = ".offsets.npy"

#: Rows scored per block by exact search (bounds the float32 temporary).
BLOCK_ROWS = 32_768
#: A segment this small keeps a float32 copy of its stored values in memory (at most 100 MB
#: at 384-d), so exact search skips converting int8 to float32 on every query.
CACHE_ROWS = 65_536

#: What fixes a damaged index: its files are written only by fieldtune, so they cannot be repaired by hand.
REBUILD = "rebuild the index with `fieldtune index`"


class DamagedIndexError(FieldtuneError, ValueError):
    """A file of an index is unreadable (truncated, or not what it should hold); the message names it."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingIndexFileError(FieldtuneError, FileNotFoundError):
    """A file an index needs is missing; the message names it.

    A ``FileNotFoundError`` too, so a reader that raced a writer deleting an
    old generation (see :func:`fieldtune.search.state.load_current`) retries.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@contextlib.contextmanager
def index_file(path: Path) -> Iterator[None]:
    """Turn a missing or unreadable file read in the block into an error naming it (``path`` if unknown).

    ``path`` is the file read, or the folder of the files read by a library
    (BM25, a dense backend), whose errors seldom say which file was wrong.
    """
    try:
        yield
    except FieldtuneError:
        raise
    except FileNotFoundError as error:
        raise MissingIndexFileError(f"{error.filename or path}: missing from the index; {REBUILD}") from error
    except (OSError, ValueError, EOFError, RuntimeError) as error:  # usearch: RuntimeError for a cut graph
        raise DamagedIndexError(f"{path}: damaged index file ({error}); {REBUILD}") from error


def load_array(path: Path, *, mmap: bool = True) -> np.ndarray:
    """An index's ``.npy`` file, memory-mapped unless ``mmap`` is False, or an error naming it."""
    with index_file(path):
        return np.load(path, mmap_mode="r" if mmap else None)


def save_array(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` atomically."""
    with atomic_write(path, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array))


def quantize(vectors: np.ndarray, storage: Storage) -> tuple[np.ndarray, np.ndarray | None]:
    """Stored form of float32 ``vectors``: (int8 rows, float32 scales) or (float16 rows, None)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if storage is Storage.FLOAT16:
        return vectors.astype(np.float16), None
    peak = np.abs(vectors).max(axis=1) if len(vectors) else np.zeros(0, np.float32)
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    stored = np.clip(np.rint(vectors / scales[:, None]), -127, 127).astype(np.int8)
    return stored, scales


def dequantize(stored: np.ndarray, scales: np.ndarray | None) -> np.ndarray:
    """Float32 rows back from their stored form."""
    values = np.asarray(stored, dtype=np.float32)
    return values * scales[:, None] if scales is not None else values


def prefix_norms(vectors: np.ndarray, dims: list[int]) -> np.ndarray:
    """Norm of ``vectors[:, :dim]`` for each dim, as columns (float32)."""
    squares = np.cumsum(np.square(vectors, dtype=np.float32), axis=1)
    columns = [np.sqrt(squares[:, dim - 1]) for dim in dims]
    return np.maximum(np.stack(columns, axis=1), 1e-12).astype(np.float32)


def _chunk_record(chunk: Chunk, concepts: list[str]) -> dict[str, Any]:
    record = chunk.to_dict()
    if concepts:
        record["concepts"] = concepts
    return record


def document_concepts(document: Document) -> list[str]:
    """The ``concepts`` metadata of a document as a list of strings ([] if absent)."""
    value = document.metadata.get("concepts") if document.metadata else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    return []


def _write_records(path: Path, records: Iterable[Mapping[str, Any]]) -> int:
    """JSONL plus ``<name>.offsets.npy`` (n + 1 byte offsets); returns the record count."""
    offsets = [0]
    with atomic_write(path, "wb") as handle:
        for record in records:
            line = json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"
            handle.write(line)
            offsets.append(offsets[-1] + len(line))
    save_array(path.with_name(path.name + OFFSETS), np.asarray(offsets, dtype=np.int64))
    return len(offsets) - 1


def write_segment(
    directory: Path,
    documents: list[Document],
    chunks: list[Chunk],
    vectors: np.ndarray,
    *,
    storage: Storage,
    dims: list[int],
) -> dict[str, int]:
    """Write one segment (``vectors`` aligned with ``chunks``); return its row and doc counts."""
    if len(chunks) != len(vectors):
        raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
    directory.mkdir(parents=True, exist_ok=True)
    ordinal = {doc.id: i for i, doc in enumerate(documents)}
    concepts = {doc.id: document_concepts(doc) for doc in documents}
    stored, scales = quantize(vectors, storage)
    save_array(directory / VECTORS, stored)
    if scales is not None:
        save_array(directory / SCALES, scales)
    save_array(directory / NORMS, prefix_norms(dequantize(stored, scales), dims))
    save_array(
        directory / CHUNK_DOCS, np.asarray([ordinal[c.doc_id] for c in chunks], dtype=np.int32)
    )
    with atomic_write(directory / DOC_IDS) as handle:
        json.dump([doc.id for doc in documents], handle, ensure_ascii=False)
    _write_records(directory / SEGMENT_CHUNKS, (_chunk_record(c, concepts[c.doc_id]) for c in chunks))
    _write_records(directory / SEGMENT_DOCUMENTS, (doc.to_dict() for doc in documents))
    return {"rows": len(chunks), "documents": len(documents)}


class RecordFile:
    """Random access to the records of a JSONL file written by :func:`_write_records`.

    Reads use ``os.pread`` on a descriptor held open, so they are safe from many
    threads and keep working after a newer generation deletes the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offsets = load_array(path.with_name(path.name + OFFSETS))
        with index_file(path):
            self._handle = open(path, "rb")  # noqa: SIM115 - held for the life of the segment
        # A truncated file would fail on the first search that reads past its end: refuse it now.
        size, expected = os.fstat(self._handle.fileno()).st_size, int(self._offsets[-1])
        if size != expected:
            self._handle.close()
            raise DamagedIndexError(f"{path}: damaged index file ({size} bytes, its offsets say {expected}); {REBUILD}")

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, index: int) -> dict[str, Any]:
        start, stop = int(self._offsets[index]), int(self._offsets[index + 1])
        return json.loads(os.pread(self._handle.fileno(), stop - start, start))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)

    def close(self) -> None:
        self._handle.close()


class Segment:
    """One segment opened read-only (arrays memory-mapped)."""

    def __init__(self, directory: Path, storage: Storage, dims: list[int]) -> None:
        self.directory = directory
        self.storage = storage
        self.dims = dims
        self.vectors = load_array(directory / VECTORS)
        self.scales = load_array(directory / SCALES) if storage is Storage.INT8 else None
        self.norms = load_array(directory / NORMS)
        self.chunk_docs = load_array(directory / CHUNK_DOCS)
        with index_file(directory / DOC_IDS):
            self.doc_ids: list[str] = json.loads((directory / DOC_IDS).read_text(encoding="utf-8"))
        self.chunks = RecordFile(directory / SEGMENT_CHUNKS)
        self.documents = RecordFile(directory / SEGMENT_DOCUMENTS)
        self._values: np.ndarray | None = None
        if not len(self.vectors) == len(self.norms) == len(self.chunk_docs) == len(self.chunks):
            raise DamagedIndexError(f"{directory}: segment files disagree on the number of chunks; {REBUILD}")

    @property
    def rows(self) -> int:
        return len(self.vectors)

    def _factor(self, dim: int, rows: slice | np.ndarray) -> np.ndarray:
        """Multiplier turning a raw stored dot product at ``dim`` into a cosine."""
        inverse = 1.0 / np.asarray(self.norms[rows, self.dims.index(dim)], dtype=np.float32)
        return inverse * self.scales[rows] if self.scales is not None else inverse

    def block_scores(self, queries: np.ndarray, dim: int, start: int, stop: int) -> np.ndarray:
        """Cosines (rows ``start:stop`` x queries) at ``dim``; ``queries`` unit-norm at ``dim``."""
        if self.rows <= CACHE_ROWS:
            if self._values is None:  # two threads may both build it; either copy is right
                self._values = np.asarray(self.vectors, dtype=np.float32)
            block = self._values[start:stop, :dim]
        else:
            block = np.asarray(self.vectors[start:stop, :dim], dtype=np.float32)
        return (block @ queries.T) * self._factor(dim, slice(start, stop))[:, None]

    def row_scores(self, rows: np.ndarray, query: np.ndarray, dim: int) -> np.ndarray:
        """Cosines of the (sorted, local) ``rows`` with one unit-norm ``query`` at ``dim``."""
        raw = np.asarray(self.vectors[rows, :dim], dtype=np.float32) @ query
        return raw * self._factor(dim, rows)

    def dequantized(self, start: int, stop: int) -> np.ndarray:
        """Float32 unit-norm rows ``start:stop`` (for building an ANN index)."""
        scales = None if self.scales is None else np.asarray(self.scales[start:stop])
        values = dequantize(self.vectors[start:stop], scales)
        return values / np.asarray(self.norms[start:stop, 0], dtype=np.float32)[:, None]

    def close(self) -> None:
        self.chunks.close()
        self.documents.close()


class VectorStore:
    """All segments' vectors as one row space (global row = segment start + local row)."""

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments
        sizes = [s.rows for s in segments]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    @property
    def rows(self) -> int:
        return int(self.starts[-1])

    def locate(self, row: int) -> tuple[Segment, int]:
        """The segment holding global ``row`` and the row's local index there."""
        position = int(np.searchsorted(self.starts, row, side="right")) - 1
        return self.segments[position], row - int(self.starts[position])

    def offsets(self) -> Iterator[tuple[int, Segment]]:
        """(global row of its first chunk, segment) for every segment, in row order."""
        yield from zip(self.starts[:-1].tolist(), self.segments, strict=True)

    def blocks(self) -> Iterator[tuple[int, Segment, int, int]]:
        """(global start, segment, local start, local stop) for every block of rows."""
        for offset, segment in self.offsets():
            for start in range(0, segment.rows, BLOCK_ROWS):
                yield offset + start, segment, start, min(start + BLOCK_ROWS, segment.rows)

    def scores(self, queries: np.ndarray, dim: int) -> np.ndarray:
        """Exact cosines (queries x all rows) at ``dim``; ``queries`` unit-norm at ``dim``."""
        out = np.empty((len(queries), self.rows), dtype=np.float32)
        for offset, segment, start, stop in self.blocks():
            out[:, offset : offset + stop - start] = segment.block_scores(
                queries, dim, start, stop
            ).T
        return out

    def row_scores(self, rows: np.ndarray, query: np.ndarray, dim: int) -> np.ndarray:
        """Exact cosines of global ``rows`` (any order) with one unit-norm query at ``dim``."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty(len(rows), dtype=np.float32)
        which = np.searchsorted(self.starts, rows, side="right") - 1
        for position in np.unique(which):
            mask = which == position
            local = rows[mask] - self.starts[position]
            order = np.argsort(local)
            values = np.empty(len(local), dtype=np.float32)
            values[order] = self.segments[position].row_scores(local[order], query, dim)
            out[mask] = values
        return out

    def nbytes(self) -> dict[str, int]:
        """Bytes on disk of the stored vectors, scales and norms."""
        total = {"vectors": 0, "scales": 0, "norms": 0}
        for segment in self.segments:
            total["vectors"] += segment.vectors.nbytes
            total["scales"] += 0 if segment.scales is None else segment.scales.nbytes
            total["norms"] += segment.norms.nbytes
        return total

    def close(self) -> None:
        for segment in self.segments:
            segment.close()
