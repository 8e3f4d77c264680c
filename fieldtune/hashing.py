"""Every hash fieldtune computes: content digests of files and records, and seeded draws.

One module so that a split, a sample or a cache key is never decided by two
slightly different functions. Seeded draws hash ``"<seed>:<key>"`` with SHA-256
and read its first 8 bytes: the same seed and key give the same number on every
machine and Python version (``hash()`` is salted per process, ``random`` is not
independent of call order).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

_ENCODING = ("utf-8", "surrogatepass")  # ingested text may carry lone surrogates: hash them, never fail


def _first_8_bytes(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode(*_ENCODING)).digest()[:8], "big")


def seeded_int(seed: int, key: str) -> int:
    """A 64-bit integer decided by ``seed`` and ``key`` alone (a seed for ``random.Random``)."""
    return _first_8_bytes(f"{seed}:{key}")


def seeded_fraction(seed: int, key: str) -> float:
    """A number in [0, 1) decided by ``seed`` and ``key`` alone (splits, seeded orders)."""
    return seeded_int(seed, key) / 2**64


def unit_hash(*parts: object) -> float:
    """A number in [0, 1) decided by ``parts`` (joined with the unit separator)."""
    return _first_8_bytes("\x1f".join(map(str, parts))) / 2**64


def texts_sha256(texts: Iterable[str]) -> str:
    """Digest of a sequence of texts (order matters; no text can run into the next)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode(*_ENCODING))
        digest.update(b"\0")
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode(*_ENCODING)).hexdigest()


def json_sha256(data: Any) -> str:
    """Digest of JSON-serialisable ``data`` with sorted keys (parameters, manifests)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256_cached(path: Path) -> str:
    """``file_sha256`` memoised by (path, size, mtime): model weights are hashed once per process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = file_sha256(path)
    return _HASH_CACHE[key]


def path_sha256(path: str | Path, exclude: Collection[Path] = ()) -> str:
    """Hash of a file, or of every file under a directory (names and contents; dot-files skipped).

    ``exclude`` lists files or directories inside ``path`` that belong to something else
    (a model card written into a model directory by a later stage) and are left out.
    """
    path = Path(path)
    if path.is_file():
        return file_sha256_cached(path)
    skip = [Path(p) for p in exclude]
    digest = hashlib.sha256()
    files = (p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    for item in sorted(p for p in files if not any(p == s or s in p.parents for s in skip)):
        digest.update(item.relative_to(path).as_posix().encode())
        digest.update(file_sha256_cached(item).encode())
    return digest.hexdigest()
