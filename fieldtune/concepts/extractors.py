"""Term extractors: the interface, a resumable on-disk cache, and the registry.

An extractor turns chunks into :class:`TermCandidate` records: a surface form
seen in a chunk, where, and optionally a description hint. Everything after
extraction (variant merging, scoring by corpus statistics, occurrences,
descriptions, edges) is shared by all extractors.

Work is done in batches of chunk texts through :func:`run_batches`, which
consults an :class:`ExtractionCache` first and appends each finished batch to
it, so a rerun, or a run after an interruption, only extracts what is missing.

Plugging in an extractor
------------------------
:mod:`fieldtune.concepts.llm` is the worked example: an LLM extractor behind an
OpenAI-compatible endpoint, which also states relations and kinds
(:class:`StatingExtractor`, which :func:`build_graph` turns into typed edges).
In a new module, write a class with a ``name`` and an
``extract`` method that calls :func:`run_batches` with a batch function
taking, say, 8 chunk texts at a time and returning, per text,
``(surface, start, hint)`` triples, where ``hint`` is the model's one-sentence
description of the term (``start`` may be -1 when the model does not give an
offset). Give it a ``config_hash`` covering the model name, prompt and
temperature, so changing any of them invalidates the cache. Register it at the
end of that module::

    register_extractor("my-extractor", lambda config: MyExtractor(...))

import the module in the package ``__init__`` (as is done for
:mod:`fieldtune.concepts.statistical`), and select it with
``build_graph(chunks, extractor="my-extractor")`` (or
``ConceptConfig(extractor=...)``, which the build's concepts stage follows). Nothing else changes: hints become
descriptions when the corpus has no defining sentence for a concept. With
fewer, better candidates, a lower ``min_df`` (even 1) is usually right.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from fieldtune.concepts.config import ConceptConfig
from fieldtune.errors import FieldtuneError
from fieldtune.registry import Registry
from fieldtune.types import Chunk, EdgeType
from fieldtune.workdir import read_append_log

logger = logging.getLogger("fieldtune.concepts")

#: One term found in one text: (surface form, character offset or -1, description hint or "").
Found = tuple[str, int, str]
#: Extracts terms from a batch of texts: one list of :data:`Found` per text, in order.
BatchFunction = Callable[[Sequence[str]], list[list[Found]]]


@dataclass(frozen=True)
class TermCandidate:
    """A term as an extractor saw it in one chunk."""

    surface: str
    chunk_id: str
    start: int = -1
    hint: str = ""


@runtime_checkable
class ConceptExtractor(Protocol):
    """Finds candidate terms in chunks (see the module docstring)."""

    name: str

    def extract(
        self,
        chunks: Sequence[Chunk],
        *,
        cache: ExtractionCache | None = None,
        progress: bool = True,
    ) -> list[TermCandidate]: ...


@dataclass(frozen=True)
class StatedRelation:
    """A typed relation an extractor read in one chunk, between two surface forms (source relation target)."""

    source: str
    target: str
    type: EdgeType
    chunk_id: str


@dataclass
class StatedFacts:
    """What an extractor states beyond terms: relations, a kind per surface form (case-folded), and counts."""

    relations: list[StatedRelation] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


@runtime_checkable
class StatingExtractor(ConceptExtractor, Protocol):
    """An extractor that also states relations and kinds (an LLM's): :func:`build_graph` adds them to the graph."""

    def stated(self) -> StatedFacts:
        """The relations, kinds and counts of the chunks of the last :meth:`extract` call."""
        ...


class UnknownExtractorError(FieldtuneError):
    """An extractor name that is not registered."""


class ExtractionCache:
    """Finished extraction results in an append-only JSONL file.

    Each line holds one chunk's result under a key made of the extractor's
    name, a hash of its configuration and a hash of the chunk text, so the
    cache never serves results of another extractor, setting or text. Lines
    are appended and flushed one batch at a time; a last line cut short by an
    interruption is dropped (and trimmed from the file) on the next load.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, list[Found]] | None = None

    @staticmethod
    def make_key(extractor: str, config_hash: str, text: str) -> str:
        text_hash = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"{extractor}:{config_hash}:{text_hash}"

    def _load(self) -> dict[str, list[Found]]:
        if self._entries is not None:
            return self._entries
        self._entries = read_append_log(self.path, lambda record: (
            record["key"], [(str(s), int(o), str(h)) for s, o, h in record["found"]]))
        return self._entries

    def get(self, key: str) -> list[Found] | None:
        """The cached result for ``key``, or None."""
        return self._load().get(key)

    def put_many(self, results: Mapping[str, list[Found]]) -> None:
        """Append ``results`` (key -> found terms) and flush them to disk."""
        entries = self._load()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            for key, found in results.items():
                handle.write(
                    json.dumps(
                        {"key": key, "found": [list(item) for item in found]}, ensure_ascii=False
                    )
                )
                handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        entries.update(results)

    def __len__(self) -> int:
        return len(self._load())


class _Progress:
    """Logs items done, rate and ETA at most every few seconds."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.started = self.last = time.monotonic()
        self.done = 0

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if not self.enabled or (now - self.last < 5.0 and self.done < self.total):
            return
        self.last = now
        rate = self.done / max(now - self.started, 1e-9)
        eta = (self.total - self.done) / rate if rate else 0.0
        logger.info("%s: %d/%d (%.0f/s, ETA %.0fs)", self.label, self.done, self.total, rate, eta)


def _batched(items: Sequence[tuple[str, str]], size: int) -> Iterable[Sequence[tuple[str, str]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_batches(
    name: str,
    config_hash: str,
    chunks: Sequence[Chunk],
    extract_batch: BatchFunction,
    *,
    batch_size: int,
    cache: ExtractionCache | None = None,
    progress: bool = True,
) -> list[TermCandidate]:
    """Run ``extract_batch`` over the chunk texts not in ``cache``; candidates in chunk order.

    Identical texts are extracted once. Each finished batch is appended to the
    cache before the next one starts.
    """
    keys = [ExtractionCache.make_key(name, config_hash, chunk.text) for chunk in chunks]
    results: dict[str, list[Found]] = {}
    todo: dict[str, str] = {}
    for key, chunk in zip(keys, chunks, strict=True):
        if key in results or key in todo:
            continue
        cached = cache.get(key) if cache is not None else None
        if cached is not None:
            results[key] = cached
        else:
            todo[key] = chunk.text
    if cache is not None and results:
        logger.info(
            "%s: %d of %d chunk texts already extracted (cache %s)",
            name,
            len(results),
            len(results) + len(todo),
            cache.path,
        )
    meter = _Progress(f"extracting terms ({name})", len(todo), progress)
    for batch in _batched(list(todo.items()), batch_size):
        found = extract_batch([text for _, text in batch])
        if len(found) != len(batch):
            raise RuntimeError(
                f"extractor {name!r} returned {len(found)} results for {len(batch)} texts"
            )
        finished = {key: list(items) for (key, _), items in zip(batch, found, strict=True)}
        if cache is not None:
            cache.put_many(finished)
        results.update(finished)
        meter.update(len(batch))
    return [
        TermCandidate(surface, chunk.id, start, hint)
        for key, chunk in zip(keys, chunks, strict=True)
        for surface, start, hint in results[key]
    ]


ExtractorFactory = Callable[[ConceptConfig], ConceptExtractor]

#: Registered extractors: name -> factory taking a :class:`ConceptConfig`. Each extractor's module
#: registers itself; the package ``__init__`` imports every such module, so the table is complete
#: whenever any part of :mod:`fieldtune.concepts` is imported (and this module imports none of them).
EXTRACTORS: Registry[ExtractorFactory] = Registry("concept extractor")


def register_extractor(name: str, factory: ExtractorFactory) -> None:
    """Add an extractor under ``name``; a name can be registered once."""
    EXTRACTORS.register(name, factory)


def get_extractor(name: str, config: ConceptConfig | None = None) -> ConceptExtractor:
    """The extractor registered as ``name``, configured with ``config``."""
    if name not in EXTRACTORS:
        close = EXTRACTORS.suggest(name)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise UnknownExtractorError(
            f"unknown concept extractor {name!r}; {hint}"
            f"registered extractors: {', '.join(sorted(EXTRACTORS))}"
        )
    return EXTRACTORS[name](config or ConceptConfig())
