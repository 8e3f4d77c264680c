"""A bounded, thread-safe LRU of recent query embeddings.

People repeat queries (the page's example queries, a refreshed result page, a
client retrying, an application asking the same thing for many users), and
encoding one costs several milliseconds of model time against well under a
millisecond for everything else a search does. An entry is keyed by the query
text, the fingerprint of the encoder that made it (weights, precision, sequence
length: :meth:`fieldtune.encoding.Encoder.fingerprint`) and the query prompt it was
encoded with, so a vector is only ever reused for exactly the input that made it.
An :class:`~fieldtune.search.Index` also clears its cache when ``fieldtune adapt``
swaps its query encoder, so the old encoder's vectors do not hold memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

#: Entries kept by default: 4,096 vectors of 384 float32 values are 6 MB.
DEFAULT_CAPACITY = 4096


class QueryKey(NamedTuple):
    """What an embedding depends on besides the weights' fingerprint: the text and the prompt."""

    text: str
    fingerprint: str
    prompt: str


class QueryEmbeddingCache:
    """Least recently used query embeddings, at most ``capacity`` of them (0 turns the cache off)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0 (got {capacity})")
        self.capacity = capacity
        self._entries: OrderedDict[QueryKey, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: QueryKey) -> np.ndarray | None:
        """The cached vector for ``key`` (read-only), or None; a hit becomes the most recent entry."""
        with self._lock:
            vector = self._entries.get(key)
            if vector is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return vector

    def put(self, key: QueryKey, vector: np.ndarray) -> None:
        """Keep a read-only copy of ``vector`` under ``key``, dropping the least recent entry when full."""
        if not self.capacity:
            return
        stored = np.array(vector, dtype=np.float32, copy=True)
        stored.flags.writeable = False  # callers share the one array: none may change it
        with self._lock:
            self._entries[key] = stored
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def discard(self, key: QueryKey) -> None:
        """Forget ``key`` if it is cached (a warm-up query that no user asked)."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget every entry (the query encoder changed)."""
        with self._lock:
            self._entries.clear()

    def stats(self) -> dict[str, int]:
        """Entries, capacity, hits and misses since the cache was made (for /health and benchmarks)."""
        with self._lock:
            return {"entries": len(self._entries), "capacity": self.capacity, "hits": self.hits,
                    "misses": self.misses}
