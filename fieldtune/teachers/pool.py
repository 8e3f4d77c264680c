"""The candidate pool: every chunk a teacher may rank, with the base model's vectors and a BM25 index.

Built once per build (the base model's document vectors are the expensive
part, and :class:`~fieldtune.encoding.Encoder` caches them on disk) and
shared by every teacher and by the evaluation of the dev queries, so all of
them rank the same candidates the same way. Candidates are chunks, shown to
both systems as search shows them (:func:`~fieldtune.encoding.document_text`:
title, then text); BM25 uses search's settings (:class:`~fieldtune.bm25.BM25Index`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fieldtune.bm25 import BM25Index
from fieldtune.encoding import document_text
from fieldtune.search.fusion import Hits
from fieldtune.types import Chunk

#: Query rows scored against the whole pool at once are capped so the score block stays near 128 MiB.
_SCORE_BLOCK_CELLS = 1 << 25


class TextEncoder(Protocol):
    """What the pool needs of a model: unit-norm float32 vectors (:class:`~fieldtune.encoding.Encoder` has it)."""

    def encode(self, texts: list[str], *, kind: str) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class CandidatePool:
    """Chunk ``ids[i]`` (of document ``doc_ids[i]``) reads ``texts[i]`` and has base vector ``vectors[i]``.

    ``encoder`` is the base model, used for the queries' vectors; use
    :meth:`from_chunks` to build a pool from a build's chunks.
    """

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    doc_ids: tuple[str, ...]
    vectors: np.ndarray
    encoder: TextEncoder
    bm25: BM25Index
    _rows: dict[str, int] = field(init=False, repr=False)
    _doc_chunks: dict[str, tuple[str, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_sizes(self.ids, self.texts, self.doc_ids, self.vectors, self.bm25.size)
        rows = {chunk_id: row for row, chunk_id in enumerate(self.ids)}
        if len(rows) != len(self.ids):
            raise ValueError("a candidate pool's chunk ids must be unique")
        doc_chunks: dict[str, list[str]] = {}
        for chunk_id, doc_id in zip(self.ids, self.doc_ids, strict=True):
            doc_chunks.setdefault(doc_id, []).append(chunk_id)
        object.__setattr__(self, "_rows", rows)
        object.__setattr__(self, "_doc_chunks", {doc: tuple(chunks) for doc, chunks in doc_chunks.items()})

    @classmethod
    def build(
        cls, ids: Sequence[str], texts: Sequence[str], doc_ids: Sequence[str], vectors: np.ndarray,
        encoder: TextEncoder,
    ) -> CandidatePool:
        """A pool over given vectors (unit float32, one row per text); the BM25 index is built here."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        _check_sizes(ids, texts, doc_ids, vectors, len(texts))  # before BM25 indexes the texts
        return cls(tuple(ids), tuple(texts), tuple(doc_ids), vectors, encoder, BM25Index(list(texts)))

    @classmethod
    def from_chunks(cls, chunks: Sequence[Chunk], encoder: TextEncoder) -> CandidatePool:
        """A pool over a build's chunks, encoded as documents by the base model (cached by the encoder)."""
        texts = [document_text(chunk.title, chunk.text) for chunk in chunks]
        vectors = encoder.encode(texts, kind="document")
        return cls.build([c.id for c in chunks], texts, [c.doc_id for c in chunks], vectors, encoder)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._rows

    def row(self, chunk_id: str) -> int:
        return self._rows[chunk_id]

    def chunks_of(self, doc_ids: Iterable[str]) -> tuple[str, ...]:
        """The chunk ids of the documents ``doc_ids``, in their order (a document not in the pool has none)."""
        return tuple(chunk for doc in doc_ids for chunk in self._doc_chunks.get(doc, ()))

    def query_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """The base model's query vectors for ``texts`` (its query prompt applied)."""
        return self.encoder.encode(list(texts), kind="query")

    def dense_top(self, query_vectors: np.ndarray, k: int) -> list[Hits]:
        """Per query, the ``k`` rows of highest cosine with ``query_vectors`` (exact, over every chunk)."""
        k = min(k, len(self))
        block = max(1, _SCORE_BLOCK_CELLS // max(1, len(self)))
        out: list[Hits] = []
        for start in range(0, len(query_vectors), block):
            scores = np.asarray(query_vectors[start : start + block], dtype=np.float32) @ self.vectors.T
            for row_scores in scores:
                top = np.argpartition(-row_scores, k - 1)[:k] if 0 < k < len(self) else np.arange(k)
                out.append(Hits.ranked(top, row_scores[top]))
        return out

    def bm25_scores(self, text: str, rows: np.ndarray) -> np.ndarray:
        """BM25 scores of ``text`` for the chunks at ``rows`` (0 where it shares no indexed word)."""
        return self.bm25.scores(text)[np.asarray(rows, dtype=np.int64)]

    def bm25_top(self, texts: Sequence[str], k: int) -> list[Hits]:
        """Per query, the ``k`` rows of highest BM25 score; rows scoring 0 are left out (as search does)."""
        indices, scores = self.bm25.search(list(texts), k)
        return [Hits.ranked(rows[found > 0], found[found > 0]) for rows, found in zip(indices, scores, strict=True)]


def _check_sizes(
    ids: Sequence[str], texts: Sequence[str], doc_ids: Sequence[str], vectors: np.ndarray, bm25_rows: int
) -> None:
    if len({len(ids), len(texts), len(doc_ids), len(vectors), bm25_rows}) != 1 or vectors.ndim != 2:
        raise ValueError(
            f"a candidate pool needs one id, text, document id, vector and BM25 row per chunk, "
            f"got {len(ids)} ids, {len(texts)} texts, {len(doc_ids)} document ids, "
            f"vectors of shape {vectors.shape} and {bm25_rows} BM25 rows"
        )
