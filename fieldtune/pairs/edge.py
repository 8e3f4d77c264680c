"""Edge pairs: a concept's name -> a central chunk of a neighbouring concept, weighted by edge type."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from fieldtune.pairs.base import ConceptGraphLike, GeneratedPairs, spread
from fieldtune.pairs.config import PairConfig
from fieldtune.types import Chunk, EdgeType, Pair, PairKind

#: How much an edge pair counts, by edge type: a stated relation is stronger evidence than co-occurrence.
EDGE_WEIGHTS = {
    EdgeType.GENERALIZES: 1.0,
    EdgeType.EXTENDS: 1.0,
    EdgeType.SIMILAR: 0.6,
    EdgeType.COOCCURS: 0.4,
}


class EdgePairs:
    """Per concept, its strongest ``max_edge_pairs_per_concept`` neighbours, one chunk each."""

    name = "edge"
    kinds: tuple[PairKind, ...] = (PairKind.EDGE,)

    def generate(self, chunks: Sequence[Chunk], graph: ConceptGraphLike, config: PairConfig) -> GeneratedPairs:
        by_id = {c.id: c for c in graph.concepts}
        neighbours: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for edge in graph.edges:
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
                    chunk_id = spread(candidates, 1, f"{concept_id}>{other_id}", config.seed)[0]
                    pairs.append(Pair(concept.name, chunk_id, PairKind.EDGE, concept_id, weight=round(weight, 3)))
                    chosen += 1
        return GeneratedPairs(pairs)
