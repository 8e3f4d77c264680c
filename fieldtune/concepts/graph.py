"""The concept graph: building it from chunks, and reading/writing it as JSON + GraphML.

:func:`build_graph` composes the steps of the stage::

    extract candidates (registered extractor, cached)  -> extractors.py, statistical.py
    group variants, score by corpus statistics          -> terms.py
    merge near-duplicates by name embedding             -> terms.py
    find occurrences, central chunks, descriptions      -> occurrences.py
    link concepts (cooccurs, similar, generalizes, ...) -> edges.py

The result is deterministic for the same chunks, configuration and model.
:meth:`ConceptGraph.write` produces ``graph.json`` (concepts, edges, stats,
config: what :func:`read_graph` reads) and ``graph.graphml`` (for Gephi,
Cytoscape or networkx), each written atomically.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fieldtune.concepts.config import ConceptConfig, NoConceptsError
from fieldtune.concepts.edges import build_edges, stated_edges
from fieldtune.concepts.extractors import ExtractionCache, StatedFacts, StatingExtractor, get_extractor
from fieldtune.concepts.occurrences import build_concepts, find_occurrences
from fieldtune.concepts.terms import Term, group_candidates, merge_near_duplicates, score_terms
from fieldtune.encoding import Encoder
from fieldtune.errors import InputError
from fieldtune.types import Chunk, Concept, ConceptEdge, EdgeType
from fieldtune.workdir import atomic_write, write_json

if TYPE_CHECKING:
    import networkx as nx

logger = logging.getLogger("fieldtune.concepts")

GRAPH_JSON = "graph.json"
GRAPH_GRAPHML = "graph.graphml"
EXTRACTION_CACHE = "extraction-cache.jsonl"
#: The ``format`` field of the concept graph's JSON (the ANN index has a graph file of its own).
CONCEPT_GRAPH_FORMAT = "fieldtune.concept-graph"
CONCEPT_GRAPH_VERSION = 1
NAME_BATCH_SIZE = 128  # concept names are short: large batches encode faster


def _networkx() -> Any:
    try:
        import networkx
    except ImportError as error:  # pragma: no cover - networkx is a dependency
        raise ImportError(
            "writing the concept graph as GraphML needs networkx: pip install networkx"
        ) from error
    return networkx


@dataclass
class ConceptGraph:
    """Concepts (best first), typed edges between them, and how they were found.

    ``kinds`` maps a concept id to the kind an extractor stated for it (the LLM
    extractor's "method", "object", ...); empty for the statistical extractor,
    and then absent from ``graph.json``.
    """

    concepts: list[Concept]
    edges: list[ConceptEdge]
    stats: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)

    def by_id(self) -> dict[str, Concept]:
        return {concept.id: concept for concept in self.concepts}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CONCEPT_GRAPH_FORMAT,
            "version": CONCEPT_GRAPH_VERSION,
            "config": self.config,
            "stats": self.stats,
            "concepts": [concept.to_dict() for concept in self.concepts],
            "edges": [edge.to_dict() for edge in self.edges],
            **({"kinds": self.kinds} if self.kinds else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConceptGraph:
        return cls(
            concepts=[Concept.from_dict(item) for item in data["concepts"]],
            edges=[ConceptEdge.from_dict(item) for item in data["edges"]],
            stats=dict(data.get("stats") or {}),
            config=dict(data.get("config") or {}),
            kinds={str(k): str(v) for k, v in (data.get("kinds") or {}).items()},
        )

    def to_networkx(self) -> nx.MultiDiGraph:
        """A multigraph keyed by edge type, with the attributes written to GraphML."""
        graph = _networkx().MultiDiGraph()
        for concept in self.concepts:
            graph.add_node(
                concept.id,
                name=concept.name,
                score=float(concept.score),
                description=concept.description,
                aliases="|".join(concept.aliases),
                n_docs=len(concept.doc_ids),
                n_chunks=len(concept.chunk_ids),
                **({"kind": self.kinds.get(concept.id, "")} if self.kinds else {}),
            )
        for edge in self.edges:
            graph.add_edge(
                edge.source,
                edge.target,
                key=edge.type.value,
                type=edge.type.value,
                weight=float(edge.weight),
                evidence=edge.evidence,
            )
        return graph

    def write(self, directory: str | Path) -> tuple[Path, Path]:
        """Write ``graph.json`` and ``graph.graphml`` into ``directory`` atomically."""
        directory = Path(directory)
        json_path, graphml_path = directory / GRAPH_JSON, directory / GRAPH_GRAPHML
        write_json(json_path, self.to_dict())
        with atomic_write(graphml_path, "wb") as handle:
            _networkx().write_graphml(self.to_networkx(), handle)
        return json_path, graphml_path


def read_graph(directory: str | Path) -> ConceptGraph:
    """The graph written by :meth:`ConceptGraph.write` into ``directory`` (from ``graph.json``)."""
    path = Path(directory) / GRAPH_JSON
    if not path.is_file():
        raise InputError(
            path, "no concept graph here", hint="run `fieldtune build` (the concepts stage) first"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != CONCEPT_GRAPH_FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {CONCEPT_GRAPH_FORMAT!r}")
        return ConceptGraph.from_dict(data)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
        raise InputError(
            path, f"not a readable concept graph ({error})", hint="rebuild it"
        ) from error


class _Clock:
    """Seconds per step, for the log."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.seconds: dict[str, float] = {}

    def lap(self, step: str) -> float:
        now = time.monotonic()
        self.seconds[step] = round(now - self.last, 2)
        self.last = now
        return self.seconds[step]


def _max_tokens(terms: Sequence[Term]) -> int:
    """Longest spelling in words, counting hyphenated parts (they may be written apart)."""
    longest = 1
    for term in terms:
        for other in [term, *term.merged]:
            for spelling in other.spellings:
                longest = max(longest, len(spelling.split()) + spelling.count("-"))
    return longest


def _select_terms(
    chunks: Sequence[Chunk],
    n_docs: int,
    config: ConceptConfig,
    extractor: str,
    model: str,
    cache_dir: Path | None,
    progress: bool,
    clock: _Clock,
    stats: dict[str, Any],
) -> tuple[list[Term], np.ndarray, StatedFacts | None]:
    """Extract, score and merge: the concept terms, best first, their name embeddings, and what was stated."""
    cache = ExtractionCache(Path(cache_dir) / EXTRACTION_CACHE) if cache_dir is not None else None
    chosen = get_extractor(extractor, config)
    candidates = chosen.extract(chunks, cache=cache, progress=progress)
    stated = chosen.stated() if isinstance(chosen, StatingExtractor) else None
    groups = group_candidates(candidates, chunks)
    logger.info(
        "concepts: %d candidates, %d distinct terms (%.1fs)",
        len(candidates),
        len(groups),
        clock.lap("extract"),
    )
    scored = score_terms(
        groups, chunks, min_df=config.min_df, max_df_docs=config.max_df_docs(n_docs)
    )
    stats.update(
        candidates=len(candidates), distinct_terms=len(groups), terms_in_df_range=len(scored)
    )
    if not scored:
        raise NoConceptsError(len(chunks), n_docs, len(groups), config.min_df)
    budget = config.concept_budget(n_docs)
    shortlist = scored[: budget + budget // 4 + 10]  # room for near-duplicates merged away
    encoder = Encoder(model, batch_size=NAME_BATCH_SIZE, show_progress=progress)
    vectors = encoder.encode([term.name for term in shortlist], kind="query")
    merged, rows = merge_near_duplicates(shortlist, vectors, config.merge_threshold)
    final = merged[:budget]
    stats.update(
        concept_budget=budget,
        variant_spellings_merged=sum(len(t.spellings) - 1 for t in final),
        near_duplicates_merged=len(shortlist) - len(merged),
    )
    logger.info(
        "concepts: %d terms in document-frequency range, %d near-duplicates merged, "
        "keeping %d (%.1fs)",
        len(scored),
        len(shortlist) - len(merged),
        len(final),
        clock.lap("score_merge"),
    )
    return final, vectors[rows[: len(final)]], stated


def _kinds(concepts: Sequence[Concept], kinds: dict[str, str]) -> dict[str, str]:
    """Concept id -> the kind stated for its name or, failing that, for one of its aliases."""
    found = {}
    for concept in concepts:
        for spelling in (concept.name, *concept.aliases):
            kind = kinds.get(spelling.casefold())
            if kind:
                found[concept.id] = kind
                break
    return found


def build_graph(
    chunks: Sequence[Chunk],
    *,
    config: ConceptConfig | None = None,
    extractor: str | None = None,
    model: str = "minilm",
    cache_dir: Path | None = None,
    progress: bool = True,
) -> ConceptGraph:
    """Find the field's concepts in ``chunks`` and link them (see the module docstring).

    ``extractor`` names a registered extractor (default: ``config.extractor``),
    ``model`` the embedding model for name similarity (merging, ``similar``
    edges). An extractor that states relations and kinds (the LLM's) adds
    them: its relations between two of the graph's concepts become typed
    edges, its kinds :attr:`ConceptGraph.kinds` (tallied in ``stats["kinds"]``),
    its counts of kept, repaired and dropped output ``stats["extractor"]``. With ``cache_dir``,
    extraction results are cached there and an interrupted run resumes.
    Raises :class:`NoConceptsError` when nothing recurs across documents.
    """
    config = config or ConceptConfig()
    config.validate()
    extractor = extractor or config.extractor
    config = replace(config, min_df=config.doc_floor(extractor))  # the floor used, as graph.json records it
    chunks = list(chunks)
    n_docs = len({chunk.doc_id for chunk in chunks})
    clock = _Clock()
    stats: dict[str, Any] = {"chunks": len(chunks), "documents": n_docs}
    if not chunks:
        raise NoConceptsError(0, 0, 0, config.min_df)
    terms, vectors, stated = _select_terms(
        chunks, n_docs, config, extractor, model, cache_dir, progress, clock, stats
    )
    occurrences = find_occurrences(chunks, terms, _max_tokens(terms))
    concepts, kept, defined = build_concepts(chunks, terms, occurrences, config)
    if not concepts:
        raise NoConceptsError(len(chunks), n_docs, stats["distinct_terms"], config.min_df)
    occurrences, vectors = occurrences.restrict(kept), vectors[kept]
    logger.info(
        "concepts: occurrences and descriptions of %d concepts (%.1fs)",
        len(concepts),
        clock.lap("occurrences"),
    )
    edges = build_edges(chunks, concepts, occurrences, vectors, n_docs, config,
                        stated=stated_edges(concepts, stated.relations) if stated else ())
    kinds = _kinds(concepts, stated.kinds) if stated is not None else {}
    if stated is not None:
        stats.update(kinds=dict(Counter(kinds.values()).most_common()), extractor=stated.counts)
    by_type = Counter(edge.type.value for edge in edges)
    stats.update(
        concepts=len(concepts),
        with_defining_sentence=defined,
        edges={edge_type.value: by_type.get(edge_type.value, 0) for edge_type in EdgeType},
    )
    logger.info(
        "concepts: edges %s (%.1fs); total %.1fs",
        stats["edges"],
        clock.lap("edges"),
        sum(clock.seconds.values()),
    )
    return ConceptGraph(
        concepts, edges, stats, {**config.to_dict(), "extractor": extractor, "model": model}, kinds
    )
