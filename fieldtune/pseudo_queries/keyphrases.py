"""Keyphrases: a chunk's best concepts (by the graph's score) joined into one keyword query."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from fieldtune.pairs.base import ConceptGraphLike
from fieldtune.pseudo_queries.base import Candidate, PseudoQueryConfig
from fieldtune.types import Chunk, Concept, PseudoQuery


class KeyphraseQueries:
    """Per chunk with ``min_keyphrase_concepts`` or more concepts, the names of its top ones, best first."""

    name = "keyphrases"

    def generate(self, chunks: Sequence[Chunk], graph: ConceptGraphLike, config: PseudoQueryConfig) -> list[Candidate]:
        by_chunk: dict[str, list[Concept]] = defaultdict(list)
        for concept in graph.concepts:
            for chunk_id in dict.fromkeys(concept.chunk_ids):
                by_chunk[chunk_id].append(concept)
        found = []
        for chunk in chunks:
            ranked = sorted(by_chunk.get(chunk.id, ()), key=lambda c: (-c.score, c.name))
            names = list(dict.fromkeys(" ".join(c.name.split()) for c in ranked if c.name.strip()))
            if len(names) < config.min_keyphrase_concepts:
                continue
            text = " ".join(names[: config.max_keyphrase_concepts])
            found.append(Candidate(chunk.doc_id, PseudoQuery(f"{self.name}:{chunk.id}", text, self.name)))
        return found
