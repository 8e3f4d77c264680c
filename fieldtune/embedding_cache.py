"""Cached embeddings on disk, served whole or as any subset of what is already there.

A request is the ordered list of texts one model (fingerprint) encodes as one
kind (query/document). Its vectors are saved under a key of that list; beside
them, a digest per text. When a request's key misses, the rows it needs are
looked up by digest in the fingerprint's and kind's other files (the newest
few), so a build that has encoded its whole corpus once serves any later part
of it (the gate's pool of dev documents, say) without running the model; only
texts found nowhere are encoded, and the assembled result is saved under its
own key, an exact hit next time.

Every file is written by ``atomic_write`` (a temporary file renamed into
place): an interrupted write leaves no file, never half of one. The vectors
are written before their digests, and a digests file is used only with a
vectors file of as many rows, so a file without its digests is still an exact
hit but no source of rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fieldtune.hashing import text_sha256, texts_sha256
from fieldtune.workdir import atomic_write

logger = logging.getLogger("fieldtune.embedding_cache")

#: files of one fingerprint and kind searched for a request's rows, newest first: a build writes a handful
#: (the corpus, derived positives, a pool), so a few cover them while a long-lived cache stays cheap to search
SUBSET_SOURCES = 8
DIGESTS_SUFFIX = ".digests.npy"
#: bytes of a text's sha256 kept as its digest (128 bits: no two texts of a corpus share one)
DIGEST_BYTES = 16


def text_digests(texts: Sequence[str]) -> np.ndarray:
    """One ``DIGEST_BYTES``-byte digest per text, as a ``(n, DIGEST_BYTES)`` uint8 array."""
    raw = b"".join(bytes.fromhex(text_sha256(text)[: 2 * DIGEST_BYTES]) for text in texts)
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(texts), DIGEST_BYTES)


@dataclass(frozen=True)
class Gathered:
    """What the cache holds of a request: the vectors found (None if none) and the rows still to encode."""

    vectors: np.ndarray | None
    missing: list[int]


class EmbeddingCache:
    """One fingerprint's and kind's files in ``root``."""

    def __init__(self, root: Path, fingerprint: str, kind: str) -> None:
        self.root = root
        self.prefix = f"{fingerprint}-{kind}-"

    def path(self, texts: Sequence[str]) -> Path:
        return self.root / f"{self.prefix}{texts_sha256(texts)[:24]}.npy"

    def exact(self, texts: Sequence[str]) -> np.ndarray | None:
        """The vectors saved for exactly this list of texts, or None."""
        path = self.path(texts)
        if not path.exists():
            return None
        try:
            cached = np.load(path)
        except (OSError, ValueError):
            logger.warning("ignoring unreadable cache file %s", path)
            return None
        return cached if cached.shape[0] == len(texts) else None

    def _sources(self) -> list[tuple[Path, Path]]:
        """(digests, vectors) file pairs of this fingerprint and kind, newest first, at most ``SUBSET_SOURCES``."""
        found = []
        for digests in self.root.glob(f"{self.prefix}*{DIGESTS_SUFFIX}"):
            try:
                found.append((digests.stat().st_mtime, digests))
            except OSError:  # removed since listed
                continue
        found.sort(reverse=True)
        return [(d, d.with_name(d.name[: -len(DIGESTS_SUFFIX)] + ".npy")) for _, d in found[:SUBSET_SOURCES]]

    def gather(self, texts: Sequence[str]) -> Gathered:
        """The rows of ``texts`` found in this fingerprint's and kind's other files, and those found nowhere."""
        wanted: dict[bytes, list[int]] = {}
        for row, digest in enumerate(text_digests(texts)):
            wanted.setdefault(digest.tobytes(), []).append(row)
        vectors: np.ndarray | None = None
        for digests_path, vectors_path in self._sources() if self.root.is_dir() else []:
            if not wanted:
                break
            try:
                digests = np.load(digests_path)
                source = np.load(vectors_path, mmap_mode="r")
            except (OSError, ValueError):
                logger.warning("ignoring unreadable cache files %s", vectors_path)
                continue
            if digests.shape != (source.shape[0], DIGEST_BYTES) or source.ndim != 2:
                continue  # not a pair written together: ignored
            if vectors is not None and source.shape[1] != vectors.shape[1]:
                continue
            targets, rows = [], []
            for source_row, digest in enumerate(digests):
                found = wanted.pop(digest.tobytes(), None)
                if found is not None:
                    targets.extend(found)
                    rows.extend([source_row] * len(found))
            if not rows:
                continue
            if vectors is None:
                vectors = np.zeros((len(texts), source.shape[1]), dtype=np.float32)
            vectors[targets] = source[rows]
        missing = sorted(row for rows in wanted.values() for row in rows)
        return Gathered(vectors, missing)

    def store(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Save ``vectors`` under ``texts``' key, then their digests (a read-only cache is only a warning)."""
        path = self.path(texts)
        try:
            with atomic_write(path, "wb") as handle:
                np.save(handle, vectors)
            with atomic_write(path.with_name(path.name[: -len(".npy")] + DIGESTS_SUFFIX), "wb") as handle:
                np.save(handle, text_digests(texts))
        except OSError as error:  # a read-only cache must not fail the evaluation
            logger.warning("could not write embedding cache %s: %s", path, error)
