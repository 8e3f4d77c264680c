"""Concept pairs: a concept's name, and its description, -> chunks where the concept is central.

Both kinds come from one pass over the concepts because the pairs file lists,
concept by concept, the name pairs and then the description pairs: two
generators would regroup them (all names, then all descriptions) and change
the order of every build's pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

from fieldtune.pairs.base import ConceptGraphLike, GeneratedPairs, spread
from fieldtune.pairs.config import PairConfig
from fieldtune.types import Chunk, Concept, Pair, PairKind


class ConceptPairs:
    """Name -> up to ``max_per_concept`` central chunks; description -> up to half as many."""

    name = "concept"
    kinds: tuple[PairKind, ...] = (PairKind.CONCEPT_NAME, PairKind.CONCEPT_DESCRIPTION)

    def generate(self, chunks: Sequence[Chunk], graph: ConceptGraphLike, config: PairConfig) -> GeneratedPairs:
        pairs: list[Pair] = []
        for concept in graph.concepts:
            pairs += _name_pairs(concept, config)
            pairs += _description_pairs(concept, config)
        return GeneratedPairs(pairs)


def _name_pairs(concept: Concept, config: PairConfig) -> list[Pair]:
    chosen = spread(concept.central_chunk_ids, config.max_per_concept, concept.id, config.seed)
    return [Pair(concept.name, chunk_id, PairKind.CONCEPT_NAME, concept.id) for chunk_id in chosen]


def _description_pairs(concept: Concept, config: PairConfig) -> list[Pair]:
    if not concept.description:
        return []
    # Never pair a description with the chunk it was copied from: that teaches string matching.
    usable = [c for c in concept.central_chunk_ids if c != concept.description_chunk]
    cap = max(1, config.max_per_concept // 2)
    chosen = spread(usable, cap, concept.id + "#d", config.seed)
    return [Pair(concept.description, chunk_id, PairKind.CONCEPT_DESCRIPTION, concept.id) for chunk_id in chosen]
