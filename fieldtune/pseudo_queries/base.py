"""The pseudo-query seam: what a source is given, what it returns, and its options.

A source sees the whole corpus (chunks) and the concept graph and returns
:class:`Candidate` records: a :class:`~fieldtune.types.PseudoQuery` and the
group it belongs to (its document, or its concept), so that the seeded cap in
:func:`fieldtune.pseudo_queries.select.pseudo_queries` can spread the chosen
queries over the corpus instead of taking the first documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from fieldtune.llm.client import LLMEndpoint
from fieldtune.pairs.base import ConceptGraphLike
from fieldtune.types import Chunk, PseudoQuery


@dataclass(frozen=True)
class PseudoQueryConfig:
    """Which sources to draw from, how many queries in total and per source, and each source's limits.

    ``per_source_cap`` None means a source may fill the whole ``cap``
    (when several sources are selected they take turns, so each gets an
    equal share unless it runs out).
    """

    sources: tuple[str, ...] = ()
    cap: int = 3000
    per_source_cap: int | None = None
    seed: int = 0
    #: shorter titles ("Introduction", "Chapter 2") do not read like a query
    min_title_words: int = 3
    #: inverse-cloze sentences: long enough to mean something, short enough to read like a query
    min_sentence_words: int = 6
    max_sentence_words: int = 40
    #: keyphrases: the chunk's best concepts by score, joined; fewer than the minimum is a concept name already
    min_keyphrase_concepts: int = 2
    max_keyphrase_concepts: int = 3
    #: llm: the endpoint (``--llm-url``/``--llm-model``), queries kept per chunk, tokens per answer, query length
    llm: LLMEndpoint | None = None
    llm_queries_per_chunk: int = 3
    llm_max_tokens: int = 96
    min_llm_query_words: int = 2
    max_llm_query_words: int = 20
    #: llm: the answer cache (JSONL); None = the user cache (``FIELDTUNE_CACHE``)
    llm_cache: str | None = None

    def validate(self) -> None:
        if self.cap < 1:
            raise ValueError(f"the pseudo-query cap must be at least 1; got {self.cap}")
        if self.per_source_cap is not None and self.per_source_cap < 1:
            raise ValueError(f"the per-source pseudo-query cap must be at least 1; got {self.per_source_cap}")
        if not 1 <= self.min_sentence_words <= self.max_sentence_words:
            raise ValueError("min_sentence_words must be at least 1 and at most max_sentence_words")
        if not 1 <= self.min_keyphrase_concepts <= self.max_keyphrase_concepts:
            raise ValueError("min_keyphrase_concepts must be at least 1 and at most max_keyphrase_concepts")
        if self.llm_queries_per_chunk < 1 or self.llm_max_tokens < 8:
            raise ValueError("llm_queries_per_chunk must be at least 1 and llm_max_tokens at least 8")
        if not 1 <= self.min_llm_query_words <= self.max_llm_query_words:
            raise ValueError("min_llm_query_words must be at least 1 and at most max_llm_query_words")
        if self.llm is not None:
            self.llm.validate()


@dataclass(frozen=True)
class Candidate:
    """A pseudo-query and its group (document or concept id), over which the cap spreads its picks."""

    group: str
    query: PseudoQuery


@runtime_checkable
class PseudoQuerySource(Protocol):
    """Makes pseudo-queries of one kind from the corpus (see :mod:`fieldtune.pseudo_queries`)."""

    name: str

    def generate(
        self, chunks: Sequence[Chunk], graph: ConceptGraphLike, config: PseudoQueryConfig
    ) -> list[Candidate]: ...
