"""Pseudo-queries for builds without the user's queries: texts of the corpus that read like queries.

A query-side build (:mod:`fieldtune.stages.adapt`) needs queries; when the
user has none, ``BuildConfig.pseudo_queries`` (``--pseudo-queries``) names
sources that make them from the corpus, one module per source:

- :mod:`.titles`: each titled document's title;
- :mod:`.concepts`: each concept's name, and its description;
- :mod:`.sentences`: inverse cloze, one sentence per chunk, its document excluded
  from the teacher's candidates (:func:`drop_source_documents`);
- :mod:`.keyphrases`: a chunk's top concept names joined.
- :mod:`.llm`: queries a model behind an OpenAI-compatible endpoint writes for each chunk
  (``--llm-url``; few-shot, cached).

:func:`pseudo_queries` runs the chosen sources and caps the result per source
and in total, spread over documents by a seeded order (:mod:`.select`).
Pseudo-queries are not supervision: their dev share is pseudo too, so the
quality gate still demands a significant gain before it installs anything but
the base (``BuildConfig.has_supervision`` stays False).

Adding a source
---------------
One new module with a class that has a ``name`` and
``generate(chunks, graph, config) -> list[Candidate]`` (each
:class:`~fieldtune.types.PseudoQuery` with the group, document or concept,
that the cap spreads over; set ``exclude_doc_id`` when the text was cut out
of a document), and one ``PSEUDO_QUERY_SOURCES.register(...)`` line in
:mod:`.sources`. A source's options go in :class:`PseudoQueryConfig`.
"""

from __future__ import annotations

from fieldtune.pseudo_queries.base import Candidate, PseudoQueryConfig, PseudoQuerySource
from fieldtune.pseudo_queries.exclude import drop_source_documents
from fieldtune.pseudo_queries.select import pseudo_queries
from fieldtune.pseudo_queries.sources import PSEUDO_QUERY_SOURCES

__all__ = [
    "PSEUDO_QUERY_SOURCES",
    "Candidate",
    "PseudoQueryConfig",
    "PseudoQuerySource",
    "drop_source_documents",
    "pseudo_queries",
]
