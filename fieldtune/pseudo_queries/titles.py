"""Titles: each titled document's title is one query (its answer is the document itself).

Short, title-like queries were the first corpus-only source with a significant
dev-set gain in the query-side probe (SciFact, issue 14).
"""

from __future__ import annotations

from collections.abc import Sequence

from fieldtune.pairs.base import ConceptGraphLike
from fieldtune.pseudo_queries.base import Candidate, PseudoQueryConfig
from fieldtune.types import Chunk, PseudoQuery


class TitleQueries:
    """One query per document: the title of its first titled chunk, when it has ``min_title_words`` words."""

    name = "titles"

    def generate(self, chunks: Sequence[Chunk], graph: ConceptGraphLike, config: PseudoQueryConfig) -> list[Candidate]:
        found: dict[str, Candidate] = {}
        for chunk in chunks:
            title = " ".join(chunk.title.split())
            if chunk.doc_id in found or len(title.split()) < config.min_title_words:
                continue
            found[chunk.doc_id] = Candidate(chunk.doc_id, PseudoQuery(f"{self.name}:{chunk.doc_id}", title, self.name))
        return list(found.values())
