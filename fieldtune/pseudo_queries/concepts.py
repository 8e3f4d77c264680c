"""Concepts: each concept's name, and its description as a second query (the math-embed anchors)."""

from __future__ import annotations

from collections.abc import Sequence

from fieldtune.pairs.base import ConceptGraphLike
from fieldtune.pseudo_queries.base import Candidate, PseudoQueryConfig
from fieldtune.types import Chunk, PseudoQuery

#: the id of a concept's description query is "<source>:<concept id><DESCRIPTION_SUFFIX>"
DESCRIPTION_SUFFIX = "~description"


class ConceptQueries:
    """The name of every concept of the graph, then its description when it has one that differs."""

    name = "concepts"

    def generate(self, chunks: Sequence[Chunk], graph: ConceptGraphLike, config: PseudoQueryConfig) -> list[Candidate]:
        found = []
        for concept in graph.concepts:
            name = " ".join(concept.name.split())
            description = " ".join(concept.description.split())
            if name:
                found.append(Candidate(concept.id, PseudoQuery(f"{self.name}:{concept.id}", name, self.name)))
            if description and description.casefold() != name.casefold():
                query = PseudoQuery(f"{self.name}:{concept.id}{DESCRIPTION_SUFFIX}", description, self.name)
                found.append(Candidate(concept.id, query))
        return found
