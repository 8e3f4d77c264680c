"""Training pairs from the concept graph, split by concept, with a leakage check.

Pair kinds (see :class:`~fieldtune.types.PairKind`): concept name or
description -> chunks where the concept is central; concept -> central chunks
of a neighbouring concept (weighted by edge type); document title -> its
chunks; a sentence -> the rest of its chunk. Pairs are deduplicated and capped
per concept so frequent concepts do not drown the rest.

The split is by *group* (the concept for concept/edge pairs, the document for
title/sentence pairs), and is made leak-free by construction: no training
anchor equals a dev/test anchor, and no training anchor mentions a dev/test
concept by name or alias. :func:`check_leakage` verifies this independently
and runs on every build. The test concepts become a derived BEIR evaluation
set: concept name -> the chunks where that concept is central.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from fieldtune.chunking import sentence_starts
from fieldtune.hashing import seeded_fraction
from fieldtune.types import Chunk, Concept, ConceptEdge, Document, EdgeType, EvalSet, Pair, PairKind

logger = logging.getLogger("fieldtune.pairs")

#: How much an edge pair counts, by edge type: a stated relation is stronger evidence than co-occurrence.
EDGE_WEIGHTS = {EdgeType.GENERALIZES: 1.0, EdgeType.EXTENDS: 1.0, EdgeType.SIMILAR: 0.6, EdgeType.COOCCURS: 0.4}
#: Derived texts (a chunk without one sentence) get ids "<chunk id>~s<sentence index>".
REST_SEPARATOR = "~s"


class Split(str, Enum):
    TRAIN = "train"
    DEV = "dev"
    TEST = "test"


@dataclass(frozen=True)
class PairConfig:
    max_per_concept: int = 8
    max_edge_pairs_per_concept: int = 4
    max_title_pairs_per_doc: int = 2
    max_sentence_pairs_per_doc: int = 2
    min_sentence_words: int = 6
    min_rest_words: int = 20
    kinds: tuple[PairKind, ...] = tuple(PairKind)
    dev_fraction: float = 0.1
    test_fraction: float = 0.15
    seed: int = 0

    def validate(self) -> None:
        if not 0 <= self.dev_fraction < 1 or not 0 < self.test_fraction < 1 or self.dev_fraction + self.test_fraction >= 0.9:
            raise ValueError("dev_fraction and test_fraction must be in [0, 1) and leave most concepts for training")
        if self.max_per_concept < 1:
            raise ValueError("max_per_concept must be at least 1")


@dataclass
class PairSet:
    """Pairs by split, the derived texts they reference, and what was filtered."""

    train: list[Pair] = field(default_factory=list)
    dev: list[Pair] = field(default_factory=list)
    test: list[Pair] = field(default_factory=list)
    derived_texts: dict[str, str] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)

    def counts(self) -> dict[str, dict[str, int]]:
        return {split: dict(Counter(p.kind.value for p in getattr(self, split))) for split in ("train", "dev", "test")}


def normalize_text(text: str) -> str:
    return " ".join(text.lower().split())


def assign_split(group: str, config: PairConfig) -> Split:
    """A deterministic split per group, independent of the order or number of groups."""
    value = seeded_fraction(config.seed, group)
    if value < config.test_fraction:
        return Split.TEST
    if value < config.test_fraction + config.dev_fraction:
        return Split.DEV
    return Split.TRAIN


def _spread(items: Sequence[str], cap: int, key: str, seed: int) -> list[str]:
    """Up to ``cap`` items in a seeded order that does not favour the first documents."""
    return sorted(items, key=lambda item: seeded_fraction(seed, f"{key}|{item}"))[:cap]


def concept_pairs(concepts: Sequence[Concept], config: PairConfig) -> list[Pair]:
    pairs = []
    for concept in concepts:
        for chunk_id in _spread(concept.central_chunk_ids, config.max_per_concept, concept.id, config.seed):
            pairs.append(Pair(concept.name, chunk_id, PairKind.CONCEPT_NAME, concept.id))
        if concept.description:
            # Never pair a description with the chunk it was copied from: that teaches string matching.
            usable = [c for c in concept.central_chunk_ids if c != concept.description_chunk]
            for chunk_id in _spread(usable, max(1, config.max_per_concept // 2), concept.id + "#d", config.seed):
                pairs.append(Pair(concept.description, chunk_id, PairKind.CONCEPT_DESCRIPTION, concept.id))
    return pairs


def edge_pairs(concepts: Sequence[Concept], edges: Sequence[ConceptEdge], config: PairConfig) -> list[Pair]:
    by_id = {c.id: c for c in concepts}
    neighbours: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for edge in edges:
        if edge.source in by_id and edge.target in by_id:
            weight = EDGE_WEIGHTS[edge.type] * min(1.0, max(edge.weight, 0.0) or 1.0)
            neighbours[edge.source].append((weight, edge.target))
            neighbours[edge.target].append((weight, edge.source))
    pairs = []
    for concept_id, linked in neighbours.items():
        concept = by_id[concept_id]
        own = set(concept.chunk_ids)
        chosen = 0
        for weight, other_id in sorted(linked, key=lambda item: (-item[0], item[1])):
            if chosen >= config.max_edge_pairs_per_concept:
                break
            # A neighbour's chunk that mentions this concept would just be a direct pair.
            candidates = [c for c in by_id[other_id].central_chunk_ids if c not in own]
            if candidates:
                chunk_id = _spread(candidates, 1, f"{concept_id}>{other_id}", config.seed)[0]
                pairs.append(Pair(concept.name, chunk_id, PairKind.EDGE, concept_id, weight=round(weight, 3)))
                chosen += 1
    return pairs


def title_pairs(chunks: Sequence[Chunk], config: PairConfig) -> list[Pair]:
    by_doc: dict[str, list[Chunk]] = defaultdict(list)
    for chunk in chunks:
        if chunk.title.strip() and chunk.text.strip():
            by_doc[chunk.doc_id].append(chunk)
    pairs = []
    for doc_id, doc_chunks in by_doc.items():
        for chunk in doc_chunks[: config.max_title_pairs_per_doc]:
            pairs.append(Pair(doc_chunks[0].title.strip(), chunk.id, PairKind.TITLE, doc_id))
    return pairs


def _sentences(text: str) -> list[tuple[int, int]]:
    starts = sentence_starts(text)
    ends = [*starts[1:], len(text)]
    return [(s, e) for s, e in zip(starts, ends) if text[s:e].strip()]


def sentence_pairs(chunks: Sequence[Chunk], config: PairConfig) -> tuple[list[Pair], dict[str, str]]:
    """A sentence -> the rest of its chunk (the sentence removed, so the pair is not a string match)."""
    by_doc: dict[str, list[Chunk]] = defaultdict(list)
    for chunk in chunks:
        by_doc[chunk.doc_id].append(chunk)
    pairs, texts = [], {}
    for doc_id, doc_chunks in by_doc.items():
        candidates = []
        for chunk in doc_chunks:
            spans = _sentences(chunk.text)
            if len(spans) < 2:
                continue
            for index, (start, end) in enumerate(spans):
                sentence = chunk.text[start:end].strip()
                rest = (chunk.text[:start] + chunk.text[end:]).strip()
                if len(sentence.split()) >= config.min_sentence_words and len(rest.split()) >= config.min_rest_words:
                    candidates.append((f"{chunk.id}{REST_SEPARATOR}{index}", sentence, rest, chunk.title))
        for derived_id, sentence, rest, title in sorted(candidates, key=lambda c: seeded_fraction(config.seed, c[0]))[: config.max_sentence_pairs_per_doc]:
            texts[derived_id] = f"{title} {rest}".strip() if title else rest
            pairs.append(Pair(sentence, derived_id, PairKind.SENTENCE, doc_id))
    return pairs, texts


def _dedupe(pairs: Iterable[Pair]) -> list[Pair]:
    seen, unique = set(), []
    for pair in pairs:
        key = (normalize_text(pair.anchor), pair.positive_id)
        if key not in seen:
            seen.add(key)
            unique.append(pair)
    return unique


def mention_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive whole-word regex for many names (longest first); plural endings match too."""
    names = sorted({n.strip().lower() for n in names if n and n.strip()}, key=len, reverse=True)
    if not names:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in names) + r")(?:s|es|x)?(?!\w)", re.IGNORECASE)


def _held_out_names(concepts: Sequence[Concept], held_out: set[str]) -> list[str]:
    return [name for c in concepts if c.id in held_out for name in (c.name, *c.aliases)]


def generate_pairs(chunks: Sequence[Chunk], concepts: Sequence[Concept], edges: Sequence[ConceptEdge], config: PairConfig | None = None) -> PairSet:
    """All pair kinds, split by group, with every training anchor that could leak dropped."""
    config = config or PairConfig()
    config.validate()
    result = PairSet()
    candidates: list[Pair] = []
    if PairKind.CONCEPT_NAME in config.kinds or PairKind.CONCEPT_DESCRIPTION in config.kinds:
        candidates += [p for p in concept_pairs(concepts, config) if p.kind in config.kinds]
    if PairKind.EDGE in config.kinds:
        candidates += edge_pairs(concepts, edges, config)
    if PairKind.TITLE in config.kinds:
        candidates += title_pairs(chunks, config)
    if PairKind.SENTENCE in config.kinds:
        sentence, result.derived_texts = sentence_pairs(chunks, config)
        candidates += sentence
    candidates = _dedupe(candidates)

    concept_ids = {c.id for c in concepts}
    held_out = {c.id for c in concepts if assign_split(c.id, config) is not Split.TRAIN}
    by_split: dict[Split, list[Pair]] = defaultdict(list)
    for pair in candidates:
        split = assign_split(pair.group, config)
        # Title/sentence pairs only ever train: held-out groups are concepts.
        if pair.group not in concept_ids:
            split = Split.TRAIN
        by_split[split].append(pair)
    held_out_anchors = {normalize_text(p.anchor) for s in (Split.DEV, Split.TEST) for p in by_split[s]}
    pattern = mention_pattern(_held_out_names(concepts, held_out))
    for pair in by_split[Split.TRAIN]:
        if normalize_text(pair.anchor) in held_out_anchors:
            result.dropped["train anchor equals a held-out anchor"] += 1
        elif pattern is not None and pattern.search(pair.anchor):
            result.dropped["train anchor mentions a held-out concept"] += 1
        else:
            result.train.append(pair)
    result.dev, result.test = by_split[Split.DEV], by_split[Split.TEST]
    logger.info("pairs: %s; dropped %s", result.counts(), dict(result.dropped))
    return result


@dataclass(frozen=True)
class LeakageReport:
    """What the check looked at and every leak it found (empty ``leaks`` = clean)."""

    train_anchors: int
    held_out_anchors: int
    held_out_concepts: int
    leaks: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not self.leaks

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "leaks": list(self.leaks[:20]), "n_leaks": len(self.leaks), "clean": self.clean}


def check_leakage(train: Sequence[Pair], held_out: Sequence[Pair], concepts: Mapping[str, Concept]) -> LeakageReport:
    """Independently verify that no held-out concept, anchor or query reaches training anchors."""
    leaks: list[str] = []
    held_out_groups = {p.group for p in held_out}
    held_concepts = [concepts[g] for g in sorted(held_out_groups) if g in concepts]
    train_groups = {p.group for p in train}
    for group in sorted(held_out_groups & train_groups):
        leaks.append(f"group {group!r} has pairs in training and in dev/test")
    held_anchor_set = {normalize_text(p.anchor) for p in held_out}
    pattern = mention_pattern(name for c in held_concepts for name in (c.name, *c.aliases))
    for pair in train:
        anchor = normalize_text(pair.anchor)
        if anchor in held_anchor_set:
            leaks.append(f"training anchor {pair.anchor[:60]!r} is also a dev/test anchor")
        elif pattern is not None and (match := pattern.search(pair.anchor)):
            leaks.append(f"training anchor {pair.anchor[:60]!r} mentions held-out concept {match.group(0)!r}")
    return LeakageReport(len(train), len(held_out), len(held_concepts), tuple(leaks))


def derived_eval_set(chunks: Sequence[Chunk], concepts: Sequence[Concept], test_pairs: Sequence[Pair]) -> EvalSet:
    """The held-out concepts as a retrieval task over the corpus's chunks.

    Query: a test concept's name. Relevant: the chunks where that concept is
    central (grade 1). Every chunk of the corpus is a candidate document.
    """
    test_ids = sorted({p.group for p in test_pairs})
    by_id = {c.id: c for c in concepts}
    corpus = {c.id: Document(id=c.id, title=c.title, text=c.text) for c in chunks}
    queries, qrels = {}, {}
    for concept_id in test_ids:
        concept = by_id.get(concept_id)
        relevant = [c for c in concept.central_chunk_ids if c in corpus] if concept else []
        if relevant:
            queries[f"c:{concept_id}"] = concept.name
            qrels[f"c:{concept_id}"] = {chunk_id: 1 for chunk_id in relevant}
    return EvalSet(name="derived", corpus=corpus, queries=queries, qrels=qrels)
