"""All registered generators' pairs, deduplicated, split by group, with leaking training anchors dropped."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fieldtune.pairs.base import GeneratedPairs, GraphParts, PairGenerator
from fieldtune.pairs.config import PairConfig
from fieldtune.pairs.generators import PAIR_GENERATORS
from fieldtune.pairs.split import Split, assign_split
from fieldtune.pairs.text import mention_pattern, normalize_text
from fieldtune.types import Chunk, Concept, ConceptEdge, Pair

logger = logging.getLogger("fieldtune.pairs")


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


def selected_generators(config: PairConfig) -> list[PairGenerator]:
    """The registered generators that emit a selected kind, in registry order."""
    chosen = [g for g in PAIR_GENERATORS.values() if set(g.kinds) & set(config.kinds)]
    covered = {kind for g in chosen for kind in g.kinds}
    orphans = [kind.value for kind in config.kinds if kind not in covered]
    if orphans:
        raise ValueError(
            f"no registered pair generator makes pairs of kind {', '.join(orphans)} "
            f"(generators: {', '.join(PAIR_GENERATORS)})"
        )
    return chosen


def candidate_pairs(
    chunks: Sequence[Chunk], concepts: Sequence[Concept], edges: Sequence[ConceptEdge], config: PairConfig
) -> GeneratedPairs:
    """Every selected generator's pairs of the selected kinds, concatenated in registry order."""
    graph = GraphParts(concepts, edges)
    pairs: list[Pair] = []
    texts: dict[str, str] = {}
    for generator in selected_generators(config):
        generated = generator.generate(chunks, graph, config)
        pairs += [p for p in generated.pairs if p.kind in config.kinds]
        clashes = [k for k, v in generated.derived_texts.items() if texts.get(k, v) != v]
        if clashes:
            raise ValueError(
                f"pair generator {generator.name!r} derives texts with ids another generator used "
                f"for other texts: {clashes[:3]}"
            )
        texts.update(generated.derived_texts)
    return GeneratedPairs(pairs, texts)


def _dedupe(pairs: Iterable[Pair]) -> list[Pair]:
    seen, unique = set(), []
    for pair in pairs:
        key = (normalize_text(pair.anchor), pair.positive_id)
        if key not in seen:
            seen.add(key)
            unique.append(pair)
    return unique


def _held_out_names(concepts: Sequence[Concept], held_out: set[str]) -> list[str]:
    return [name for c in concepts if c.id in held_out for name in (c.name, *c.aliases)]


def generate_pairs(
    chunks: Sequence[Chunk],
    concepts: Sequence[Concept],
    edges: Sequence[ConceptEdge],
    config: PairConfig | None = None,
) -> PairSet:
    """All pair kinds, split by group, with every training anchor that could leak dropped."""
    config = config or PairConfig()
    config.validate()
    generated = candidate_pairs(chunks, concepts, edges, config)
    result = PairSet(derived_texts=generated.derived_texts)
    candidates = _dedupe(generated.pairs)

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
