"""The artifacts of a work directory: their names, and typed access that records every read.

A stage never opens another stage's files by path. It asks its
:class:`Artifacts` view (``ctx.artifacts.chunks()``, ``.graph()``,
``.pairs("train")`` ...), which

- refuses an artifact the stage did not declare as an input
  (:class:`UndeclaredArtifactError`), so the manifest's input hashes, and
  therefore skip-unchanged, cover everything a stage depends on;
- records the read, so tests can check that declarations are exact;
- parses each artifact once per build: the records are shared by every stage
  that reads them and dropped when a stage rewrites the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from fieldtune.concepts import GRAPH_GRAPHML, GRAPH_JSON, ConceptGraph, read_graph
from fieldtune.encoding import document_text
from fieldtune.errors import FieldtuneError
from fieldtune.types import Chunk, Document, LabelledQuery, Pair, PseudoQuery, Query, ScoredQuery
from fieldtune.workdir import WorkDir, read_jsonl

DOCUMENTS = "documents.jsonl"
CHUNKS = "chunks.jsonl"
GRAPH = GRAPH_JSON
GRAPHML = GRAPH_GRAPHML
PAIRS = "pairs"
PAIR_TEXTS = "pairs/texts.jsonl"
DERIVED = "derived"
DERIVED_DEV = "derived-dev"
MINED = "mined"
TRAINING = "training"
TRAINED_MODEL = "training/model"
MODEL = "model"
MODEL_CARD = "model/README.md"
#: the records a build writes beside the weights: training/gate provenance
MODEL_RECORDS = ("model/fieldtune.json", "model/gate.json")
EVAL = "eval"
USER_QUERIES = "queries"
SCORED = "teacher"
#: the user's held-out dev queries as a BEIR set over the chunks (qrels: labels, or the teacher's top 10)
QUERY_DEV_SET = "teacher/dev-set"
ADAPTED = "adapted"
ADAPTED_MODEL = "adapted/model"
MANIFEST = "manifest.json"
CACHE = "cache"

T = TypeVar("T")


class UndeclaredArtifactError(FieldtuneError):
    """A stage touched an artifact it did not declare (a bug in the stage, not in the user's input)."""


def covers(declared: str, name: str) -> bool:
    """Whether the declared artifact ``declared`` (a file or a directory) contains ``name``."""
    return name == declared or name.startswith(declared.rstrip("/") + "/")


class ArtifactCache:
    """Parsed artifacts of one build, shared by its stages (see the module docstring)."""

    def __init__(self, workdir: WorkDir) -> None:
        self.workdir = workdir
        self._parsed: dict[str, Any] = {}

    def get(self, name: str, parse: Callable[[Path], T]) -> T:
        if name not in self._parsed:
            self._parsed[name] = parse(self.workdir.path(name))
        return self._parsed[name]

    def invalidate(self, names: Iterable[str]) -> None:
        """Forget everything under ``names`` (a stage has just rewritten them)."""
        names = list(names)
        for key in [k for k in self._parsed if any(covers(n, k) for n in names)]:
            del self._parsed[key]


def _records(parse: Callable[[dict[str, Any]], T]) -> Callable[[Path], list[T]]:
    return lambda path: [parse(record) for record in read_jsonl(path)] if path.exists() else []


def _user_query(record: dict[str, Any]) -> Query | LabelledQuery | PseudoQuery:
    if "source" in record:  # made from the corpus (fieldtune.pseudo_queries), not given by the user
        return PseudoQuery.from_dict(record)
    return LabelledQuery.from_dict(record) if "positive_ids" in record else Query.from_dict(record)


class Artifacts:
    """One stage's view of the work directory: only its declared inputs, each read recorded."""

    def __init__(self, cache: ArtifactCache, stage: str, inputs: Iterable[str]) -> None:
        self._cache = cache
        self.stage = stage
        self.inputs = tuple(inputs)
        self.reads: set[str] = set()

    def _declared(self, name: str) -> None:
        if not any(covers(declared, name) for declared in self.inputs):
            raise UndeclaredArtifactError(
                f"stage {self.stage!r} read {name!r}, which it does not declare as an input "
                f"(declared: {', '.join(self.inputs) or 'none'}); add it to the stage's inputs"
            )
        self.reads.add(name)

    def path(self, name: str) -> Path:
        """The path of a declared input, for code that reads it itself (a model directory, a BEIR set)."""
        self._declared(name)
        return self._cache.workdir.path(name)

    def _get(self, name: str, parse: Callable[[Path], T]) -> T:
        self._declared(name)
        return self._cache.get(name, parse)

    def documents(self) -> list[Document]:
        return self._get(DOCUMENTS, _records(Document.from_dict))

    def chunks(self) -> list[Chunk]:
        return self._get(CHUNKS, _records(Chunk.from_dict))

    def chunk_texts(self) -> dict[str, str]:
        """What the model sees for each chunk: its document's title, then its text."""
        return {c.id: document_text(c.title, c.text) for c in self.chunks()}

    def graph(self) -> ConceptGraph:
        return self._get(GRAPH, lambda path: read_graph(path.parent))

    def pairs(self, split: str) -> list[Pair]:
        return self._get(f"{PAIRS}/{split}.jsonl", _records(Pair.from_dict))

    def mined(self, split: str) -> list[Pair]:
        return self._get(f"{MINED}/{split}.jsonl", _records(Pair.from_dict))

    def user_queries(self, split: str) -> list[Query | LabelledQuery | PseudoQuery]:
        """The queries of ``split`` (train/dev): labelled when they carry judged positives, or pseudo-queries."""
        return self._get(f"{USER_QUERIES}/{split}.jsonl", _records(_user_query))

    def scored_queries(self, split: str) -> list[ScoredQuery]:
        return self._get(f"{SCORED}/{split}.jsonl", _records(ScoredQuery.from_dict))

    def all_texts(self) -> dict[str, str]:
        """Chunk texts plus the derived texts of the pair stage ("rest of chunk" positives)."""
        texts = self.chunk_texts()
        derived = self._get(PAIR_TEXTS, lambda path: {r["id"]: r["text"] for r in read_jsonl(path)})
        texts.update(derived)
        return texts
