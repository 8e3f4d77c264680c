"""The opt-in query log of ``fieldtune serve --log-queries FILE``: what people search for, to adapt to.

One JSON object per line, ``{"ts": ..., "query": ..., "mode": ...}``, appended
and flushed line by line (a crash loses at most the line being written), under
a lock so concurrent requests never interleave their lines. Only the query
text, its mode and the time are kept: never the API key, the client's address
or other parameters. ``fieldtune adapt --queries FILE`` reads it back
(:func:`fieldtune.adapt.read_adapt_queries`), as does any reader of ``.jsonl`` queries.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TextIO

from fieldtune.errors import InputError


class QueryLog:
    """Appends searched queries to a JSONL file (see the module docstring); thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle: TextIO = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held while serving
        except OSError as error:
            raise InputError(self.path, f"cannot open the query log for appending ({error})",
                             hint="give --log-queries a file in a writable folder") from error
        self._lock = threading.Lock()

    def write(self, query: str, mode: str) -> None:
        """Append one query (blank ones are skipped: they were not searched)."""
        if not query.strip():
            return
        line = json.dumps({"ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "query": query, "mode": mode},
                          ensure_ascii=False)
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            self._handle.close()
