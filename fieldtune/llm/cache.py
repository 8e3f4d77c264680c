"""Finished LLM answers in an append-only JSONL file, so a rerun or an interrupted run asks only for what is missing.

Each line is ``{"key": ..., "value": ...}``; the key names the plug-in, a hash
of everything that shapes its answer (model, prompt, settings) and a hash of
the input text, so an answer is never served for another model, prompt or
text. Lines are appended and flushed one batch at a time; a last line cut
short by an interruption is dropped (and trimmed from the file) on the next
load, as :class:`fieldtune.concepts.ExtractionCache` does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fieldtune.workdir import read_append_log

logger = logging.getLogger("fieldtune.llm")


def answer_key(plugin: str, config_hash: str, text: str) -> str:
    """The cache key of one input text for one plug-in configuration."""
    text_hash = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{plugin}:{config_hash}:{text_hash}"


def settings_hash(*parts: object) -> str:
    """A short hash of the settings that shape an answer (model name, prompt, limits, ...)."""
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()[:16]


class AnswerCache:
    """Key -> JSON value, persisted as JSONL (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._entries is not None:
            return self._entries
        self._entries = read_append_log(self.path, lambda record: (str(record["key"]), record["value"]))
        return self._entries

    def get(self, key: str) -> Any | None:
        """The cached value for ``key``, or None."""
        return self._load().get(key)

    def put_many(self, values: Mapping[str, Any]) -> None:
        """Append ``values`` (key -> JSON value) and flush them to disk."""
        entries = self._load()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            for key, value in values.items():
                handle.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        entries.update(values)

    def __len__(self) -> int:
        return len(self._load())
