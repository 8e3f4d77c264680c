"""The pseudo-query source registry (names are what ``--pseudo-queries`` and ``BuildConfig.pseudo_queries`` take)."""

from __future__ import annotations

from fieldtune.pseudo_queries.base import PseudoQuerySource
from fieldtune.pseudo_queries.concepts import ConceptQueries
from fieldtune.pseudo_queries.keyphrases import KeyphraseQueries
from fieldtune.pseudo_queries.llm import LLMQueries
from fieldtune.pseudo_queries.sentences import SentenceQueries
from fieldtune.pseudo_queries.titles import TitleQueries
from fieldtune.registry import Registry

PSEUDO_QUERY_SOURCES: Registry[PseudoQuerySource] = Registry("pseudo-query source")
PSEUDO_QUERY_SOURCES.register(TitleQueries.name, TitleQueries())
PSEUDO_QUERY_SOURCES.register(ConceptQueries.name, ConceptQueries())
PSEUDO_QUERY_SOURCES.register(SentenceQueries.name, SentenceQueries())
PSEUDO_QUERY_SOURCES.register(KeyphraseQueries.name, KeyphraseQueries())
PSEUDO_QUERY_SOURCES.register(LLMQueries.name, LLMQueries())
