"""The concept graph for people: find a concept, read it with its neighbours and documents, see a hit's concepts.

A build's concepts stage writes ``graph.json`` (:mod:`fieldtune.concepts.graph`)
and then nobody looks at it. An index shows it: :func:`locate_graph` finds the
graph of the index, :class:`ConceptCatalog` answers the questions a reader
asks of it, and the search service serves them as ``/concepts`` and
``/concepts/{id}`` (:mod:`fieldtune.search.concepts_routes`) beside the hits,
which carry the concepts of their chunk.

Which graph: a ``graph.json`` copied into the index directory, else the graph
of the build whose model encoded the index (an index records its model's
location, ``DIR/model``, and the build wrote ``DIR/graph.json`` beside it).
An index with neither simply has no concepts.

A hit's concepts are the graph's concepts whose name or an alias occurs in the
hit's passage (whole words, any case; the longest name wins where names overlap), best first. Matching the text rather
than the graph's chunk ids keeps it right when the index was chunked
differently from the build, and for documents added after the build.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fieldtune.concepts.graph import GRAPH_JSON, ConceptGraph, read_graph
from fieldtune.errors import FieldtuneError
from fieldtune.search.manifest import IndexManifest
from fieldtune.types import Concept, EdgeType

logger = logging.getLogger("fieldtune.search.concepts")
_WORD = re.compile(r"\w+")

#: Concepts a hit carries at most (the best ones: the graph lists concepts best first).
MAX_HIT_CONCEPTS = 8
#: Documents listed with a concept (its total is given too).
MAX_CONCEPT_DOCUMENTS = 50
#: Neighbours listed per edge type.
MAX_NEIGHBOURS = 25


class UnknownConceptError(FieldtuneError, KeyError):
    """No concept with this id in the graph."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def locate_graph(root: Path, manifest: IndexManifest) -> Path | None:
    """The ``graph.json`` of the index at ``root`` (see the module docstring), or None."""
    own = root / GRAPH_JSON
    if own.is_file():
        return own
    if manifest.model.kind == "local" and manifest.model.location:
        beside_model = Path(manifest.model.location).parent / GRAPH_JSON
        if beside_model.is_file():
            return beside_model
    return None


@dataclass(frozen=True)
class ConceptRef:
    """A concept as a hit or a list shows it: enough to link to it."""

    id: str
    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


def _summary(concept: Concept) -> dict[str, Any]:
    return {"id": concept.id, "name": concept.name, "score": concept.score, "aliases": list(concept.aliases),
            "description": concept.description, "documents": len(concept.doc_ids)}


class ConceptCatalog:
    """One concept graph, indexed for lookups by name, by id and by text."""

    def __init__(self, graph: ConceptGraph, source: Path | None = None) -> None:
        self.graph = graph
        self.source = source
        self._by_id = graph.by_id()
        self._rank = {concept.id: rank for rank, concept in enumerate(graph.concepts)}
        self._edges: dict[str, list[tuple[EdgeType, str, str, float, str]]] = defaultdict(list)
        for edge in graph.edges:
            if edge.source in self._by_id and edge.target in self._by_id:
                self._edges[edge.source].append((edge.type, "out", edge.target, edge.weight, edge.evidence))
                self._edges[edge.target].append((edge.type, "in", edge.source, edge.weight, edge.evidence))
        self._surface: dict[tuple[str, ...], str] = {}  # words of a name or alias -> concept id (better one wins)
        for concept in graph.concepts:
            for form in (concept.name, *concept.aliases):
                words = _words(form)
                if words:
                    self._surface.setdefault(words, concept.id)
        self._longest = max((len(words) for words in self._surface), default=0)

    @classmethod
    def load(cls, path: Path) -> ConceptCatalog:
        """The catalog of ``path`` (a ``graph.json``); an unreadable graph raises an error naming it."""
        return cls(read_graph(path.parent), source=path)

    def __len__(self) -> int:
        return len(self.graph.concepts)

    def find(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Concepts matching ``query``: exact name or alias first, then prefix, then word, then description.

        Within a tier, the graph's order (best concept first). A blank query lists the best concepts.
        """
        needle = " ".join(query.lower().split())
        tiers: list[tuple[int, int, Concept]] = []
        for concept in self.graph.concepts:
            tier = _tier(needle, concept)
            if tier is not None:
                tiers.append((tier, self._rank[concept.id], concept))
        tiers.sort(key=lambda item: item[:2])
        return [_summary(concept) for _, _, concept in tiers[:limit]]

    def concept(self, concept_id: str, title: Callable[[str], str | None] | None = None) -> dict[str, Any]:
        """One concept: its description, neighbours by edge type, and documents.

        ``title(doc_id)`` gives a document's title, or None when the index does not hold it
        (then the document is listed with ``in_index: false``).
        """
        if concept_id not in self._by_id:
            raise UnknownConceptError(f"no concept {concept_id!r} in the concept graph")
        concept = self._by_id[concept_id]
        neighbours: dict[str, list[dict[str, Any]]] = {}
        for edge_type, direction, other, weight, evidence in sorted(
            self._edges.get(concept_id, []), key=lambda e: (e[0].value, -e[3], self._rank[e[2]])
        ):
            group = neighbours.setdefault(edge_type.value, [])
            if len(group) < MAX_NEIGHBOURS:
                group.append({"id": other, "name": self._by_id[other].name, "direction": direction,
                              "weight": weight, "evidence": evidence})
        documents = []
        for doc_id in concept.doc_ids[:MAX_CONCEPT_DOCUMENTS]:
            name = title(doc_id) if title is not None else None
            documents.append({"id": doc_id, "title": name or "", "in_index": title is None or name is not None})
        return {**_summary(concept), "description_chunk": concept.description_chunk,
                "chunks": len(concept.chunk_ids), "neighbours": neighbours, "edge_types": [t.value for t in EdgeType],
                "document_list": documents}

    def in_text(self, text: str, limit: int = MAX_HIT_CONCEPTS) -> list[ConceptRef]:
        """The concepts named in ``text`` (whole words, any case, any punctuation between them), best first.

        Scans the words once, taking the longest name at each position ("Hall algebra", not also
        "algebra" inside it): time grows with the text, not with the size of the graph.
        """
        words = _words(text)
        found: set[str] = set()
        position = 0
        while position < len(words):
            for n in range(min(self._longest, len(words) - position), 0, -1):
                concept_id = self._surface.get(tuple(words[position : position + n]))
                if concept_id is not None:
                    found.add(concept_id)
                    position += n
                    break
            else:
                position += 1
        ordered = sorted(found, key=self._rank.__getitem__)[:limit]
        return [ConceptRef(cid, self._by_id[cid].name) for cid in ordered]


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.lower()))


def _tier(needle: str, concept: Concept) -> int | None:
    if not needle:
        return 0
    forms = [concept.name.lower(), *(alias.lower() for alias in concept.aliases)]
    if needle in forms:
        return 0
    if any(form.startswith(needle) for form in forms):
        return 1
    if any(re.search(r"(?<!\w)" + re.escape(needle), form) for form in forms):
        return 2
    if needle in concept.description.lower():
        return 3
    return None


class CatalogCache:
    """The catalog of an index's graph, read once and again only when the file changes (thread-safe).

    A graph that cannot be read raises from :meth:`get`, and from :meth:`get` with ``strict=False`` gives
    None (logged once per file version): a damaged graph must not break every search.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, int, int] | None = None
        self._catalog: ConceptCatalog | None = None
        self._error: FieldtuneError | None = None

    def get(self, root: Path, manifest: IndexManifest, *, strict: bool = True) -> ConceptCatalog | None:
        path = locate_graph(root, manifest)
        if path is None:
            return None
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if key != self._key:
                self._key, self._catalog, self._error = key, None, None
                try:
                    self._catalog = ConceptCatalog.load(path)
                except FieldtuneError as error:
                    self._error = error
                    logger.warning("no concepts on search hits: %s", error)
            if self._error is not None and strict:
                raise self._error
            return self._catalog
