"""Edges between concepts: co-occurrence, name similarity, and stated relations.

- ``cooccurs``: document-level normalised PMI,
  ``npmi = log(p(x, y) / (p(x) p(y))) / -log p(x, y)``, for pairs sharing at
  least ``cooccur_min_docs`` documents with ``npmi >= cooccur_threshold``; an
  edge is kept when it is among the ``cooccur_top_k`` strongest of either
  endpoint. Weight: the NPMI; evidence: the shared-document count.
- ``similar``: cosine of the concept names' embeddings ``>= similar_threshold``,
  top ``similar_top_k`` per concept (either endpoint). Near-duplicates were
  merged before, so they never appear here.
- ``generalizes`` / ``extends``: sentences stating the relation between two
  adjacent concept mentions ("X generalizes Y", "X is a generalization of Y",
  "Y is a special case of X", "X, a special case of Y", "X extends Y", "X is
  an extension of Y", ...). Source generalizes/extends target. Weight: the
  number of distinct supporting sentences; evidence: the first of them.
- the same types stated by an extractor (an LLM's, :func:`stated_edges`):
  weight the number of chunks stating it, evidence naming the first chunk.
  Where a sentence of the corpus states the same edge, the sentence's edge is kept.

Symmetric edges (cooccurs, similar) are stored once, source id < target id.
There are no self-loops and no duplicate (source, target, type) triples.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from fieldtune.concepts.config import ConceptConfig
from fieldtune.concepts.extractors import StatedRelation
from fieldtune.concepts.occurrences import Occurrences
from fieldtune.concepts.text import (
    Mention,
    content_word_after,
    content_word_before,
    maximal,
    sentence_spans,
    span_index,
    surface_key,
    truncate_words,
)
from fieldtune.types import Chunk, Concept, ConceptEdge, EdgeType

EVIDENCE_WORDS = 30
_MAX_GAP = 80
_FILLER = (
    r"(?:(?:the|a|an|classical|usual|ordinary|well-known|so-called|standard|famous|original"
    r"|notion\s+of)\s+)*"
)
_VERB = r"\s*,?\s*(?:which\s+|that\s+)?(?:\w+ly\s+|also\s+|further\s+)?"
_NOUN = (
    r"\s*,?\s*(?:which\s+(?:is|are)\s+|is\s+|are\s+|as\s+)?"
    r"(?:an?\s+|the\s+)?(?:(?!not\b)\w+\s+)?"
)
_GENERALIZES, _EXTENDS = EdgeType.GENERALIZES, EdgeType.EXTENDS
#: (text between mention a and the next mention b, edge type, whether a is the source).
_RELATIONS = [
    (_VERB + r"generali[sz](?:es|e|ed)", _GENERALIZES, True),  # X generalizes Y
    (_NOUN + r"generali[sz]ations?\s+of", _GENERALIZES, True),  # X is a generalization of Y
    (r"\s*,?\s*generali[sz]ing", _GENERALIZES, True),  # X, generalizing Y
    (r"\s*speciali[sz]es\s+to", _GENERALIZES, True),  # X specializes to Y
    (r"\s*(?:is|are)\s+generali[sz]ed\s+(?:by|to)", _GENERALIZES, False),  # Y is generalized by X
    (_NOUN + r"(?:special|particular|degenerate|limiting)\s+cases?\s+of", _GENERALIZES, False),
    (_NOUN + r"speciali[sz]ations?\s+of", _GENERALIZES, False),  # Y is a specialization of X
    (_VERB + r"extend(?:s|ed)?", _EXTENDS, True),  # X extends Y
    (_NOUN + r"extensions?\s+of", _EXTENDS, True),  # X is an extension of Y
    (r"\s*,?\s*extending", _EXTENDS, True),  # X, extending Y
    (r"\s*(?:is|are)\s+extended\s+(?:by|to)", _EXTENDS, False),  # Y is extended by X
]
RELATION_PATTERNS: list[tuple[re.Pattern[str], EdgeType, bool]] = [
    (re.compile(pattern + r"\s+" + _FILLER, re.IGNORECASE), edge_type, forward)
    for pattern, edge_type, forward in _RELATIONS
]


def _ordered(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _doc_matrix(concepts: Sequence[Concept]) -> tuple[np.ndarray, int]:
    """Shared-document counts between concepts, and the number of documents."""
    from scipy import sparse

    doc_index: dict[str, int] = {}
    rows, cols = [], []
    for row, concept in enumerate(concepts):
        for doc in concept.doc_ids:
            rows.append(row)
            cols.append(doc_index.setdefault(doc, len(doc_index)))
    incidence = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)),
        shape=(len(concepts), max(len(doc_index), 1)),
    )
    return np.asarray((incidence @ incidence.T).todense()), len(doc_index)


def _top_k_union(scores: np.ndarray, mask: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Pairs (i < j) among each row's ``k`` best masked entries (ties by column)."""
    pairs: set[tuple[int, int]] = set()
    for i in range(scores.shape[0]):
        columns = np.flatnonzero(mask[i])
        if not len(columns) or k == 0:
            continue
        order = columns[np.lexsort((columns, -scores[i, columns]))][:k]
        pairs.update((min(i, int(j)), max(i, int(j))) for j in order)
    return sorted(pairs)


def cooccurrence_edges(
    concepts: Sequence[Concept], n_docs: int, config: ConceptConfig
) -> list[ConceptEdge]:
    """``cooccurs`` edges by document-level NPMI (module docstring)."""
    if len(concepts) < 2:
        return []
    shared, _ = _doc_matrix(concepts)
    df = np.diag(shared).astype(np.float64)
    total = max(n_docs, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_xy = shared / total
        pmi = np.log(p_xy / np.outer(df / total, df / total))
        npmi = np.where(p_xy >= 1.0, 1.0, pmi / -np.log(p_xy))
    mask = (shared >= config.cooccur_min_docs) & (npmi >= config.cooccur_threshold)
    np.fill_diagonal(mask, False)
    edges = []
    for i, j in _top_k_union(np.nan_to_num(npmi), mask, config.cooccur_top_k):
        source, target = _ordered(concepts[i].id, concepts[j].id)
        edges.append(
            ConceptEdge(
                source,
                target,
                EdgeType.COOCCURS,
                round(float(npmi[i, j]), 4),
                f"{int(shared[i, j])} shared documents",
            )
        )
    return edges


def similarity_edges(
    concepts: Sequence[Concept], vectors: np.ndarray, config: ConceptConfig
) -> list[ConceptEdge]:
    """``similar`` edges by cosine of the name embeddings (module docstring)."""
    if len(concepts) < 2:
        return []
    sims = vectors @ vectors.T
    mask = sims >= config.similar_threshold
    np.fill_diagonal(mask, False)
    edges = []
    for i, j in _top_k_union(sims, mask, config.similar_top_k):
        source, target = _ordered(concepts[i].id, concepts[j].id)
        edges.append(
            ConceptEdge(
                source,
                target,
                EdgeType.SIMILAR,
                round(float(sims[i, j]), 4),
                "name embedding cosine",
            )
        )
    return edges


def match_relation(between: str) -> tuple[EdgeType, bool] | None:
    """The relation stated by the text between two mentions: (type, first mention is source)."""
    if len(between) > _MAX_GAP:
        return None
    for pattern, edge_type, forward in RELATION_PATTERNS:
        if pattern.fullmatch(between):
            return edge_type, forward
    return None


def _modified(text: str, a: Mention, b: Mention) -> bool:
    """Whether either mention is only part of a longer phrase (so the relation is not its)."""
    return content_word_before(text, a.start) or content_word_after(text, b.end)


def relation_edges(
    chunks: Sequence[Chunk], concepts: Sequence[Concept], occurrences: Occurrences
) -> list[ConceptEdge]:
    """``generalizes`` / ``extends`` edges from relation sentences (module docstring).

    ``occurrences`` index concepts by position in ``concepts``.
    """
    support: dict[tuple[str, str, EdgeType], dict[tuple[str, str], str]] = defaultdict(dict)
    for chunk, mentions in zip(chunks, occurrences.mentions, strict=True):
        if len(mentions) < 2:
            continue
        ordered = list(maximal(mentions))
        spans = None
        for a, b in itertools.pairwise(ordered):
            if a.concept == b.concept or b.start < a.end:
                continue
            found = match_relation(chunk.text[a.end : b.start])
            if found is None or _modified(chunk.text, a, b):
                continue
            spans = spans or sentence_spans(chunk.text)
            s0, s1 = spans[span_index(spans, a.start)]
            if b.end > s1:
                continue
            edge_type, forward = found
            source, target = (a, b) if forward else (b, a)
            sentence = " ".join(chunk.text[s0:s1].split())
            key = (concepts[source.concept].id, concepts[target.concept].id, edge_type)
            support[key].setdefault((chunk.doc_id, sentence), sentence)
    edges = []
    for (source, target, edge_type), sentences in sorted(
        support.items(), key=lambda item: (item[0][0], item[0][1], item[0][2].value)
    ):
        evidence = truncate_words(next(iter(sentences.values())), EVIDENCE_WORDS)
        edges.append(ConceptEdge(source, target, edge_type, float(len(sentences)), evidence))
    return edges


def stated_edges(concepts: Sequence[Concept], relations: Sequence[StatedRelation]) -> list[ConceptEdge]:
    """Edges for the relations an extractor stated between two of ``concepts`` (by any spelling or alias)."""
    by_key: dict[str, str] = {}
    for concept in concepts:
        for spelling in (concept.name, *concept.aliases):
            by_key.setdefault(surface_key(spelling), concept.id)
    support: dict[tuple[str, str, EdgeType], list[str]] = defaultdict(list)
    for relation in relations:
        source, target = by_key.get(surface_key(relation.source)), by_key.get(surface_key(relation.target))
        if source and target and source != target:
            chunks = support[(source, target, relation.type)]
            if relation.chunk_id not in chunks:
                chunks.append(relation.chunk_id)
    return [
        ConceptEdge(source, target, edge_type, float(len(chunks)),
                    f"stated by the extractor in {len(chunks)} chunk(s), first {chunks[0]}")
        for (source, target, edge_type), chunks in sorted(support.items(), key=lambda item: (
            item[0][0], item[0][1], item[0][2].value))
    ]


def build_edges(
    chunks: Sequence[Chunk],
    concepts: Sequence[Concept],
    occurrences: Occurrences,
    vectors: np.ndarray,
    n_docs: int,
    config: ConceptConfig,
    stated: Sequence[ConceptEdge] = (),
) -> list[ConceptEdge]:
    """All edges, deduplicated, ordered by type then source then target (``stated``: :func:`stated_edges`)."""
    edges = [
        *cooccurrence_edges(concepts, n_docs, config),
        *similarity_edges(concepts, vectors, config),
        *stated,
        *relation_edges(chunks, concepts, occurrences),
    ]
    unique = {(e.source, e.target, e.type): e for e in edges if e.source != e.target}
    order = {edge_type: n for n, edge_type in enumerate(EdgeType)}
    return sorted(unique.values(), key=lambda e: (order[e.type], e.source, e.target))
