"""The selection: every chosen source's queries in a seeded order spread over the corpus, capped, deduplicated.

Within a source, queries are grouped (by document, or concept) and taken in
rounds: one query of every group, in a seeded group order, before any group
gives a second, so a cap keeps queries from all over the corpus rather than
from its first documents. Each source is cut to ``per_source_cap``; the
sources then take turns (in the order they were named) until ``cap`` queries
are chosen. A text already chosen (case and spacing ignored) is skipped, so
the first source to offer it keeps it. The result depends on the seed and the
corpus alone, not on the order of the records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import zip_longest
from typing import TypeVar

from fieldtune.hashing import seeded_fraction
from fieldtune.pairs.base import ConceptGraphLike
from fieldtune.pseudo_queries.base import Candidate, PseudoQueryConfig
from fieldtune.pseudo_queries.sources import PSEUDO_QUERY_SOURCES
from fieldtune.types import Chunk, PseudoQuery

T = TypeVar("T")
_MISSING = object()


def pseudo_queries(chunks: Sequence[Chunk], graph: ConceptGraphLike, config: PseudoQueryConfig) -> list[PseudoQuery]:
    """The pseudo-queries of ``config.sources`` (see the module docstring); unknown names raise UnknownNameError."""
    config.validate()
    sources = [PSEUDO_QUERY_SOURCES[name] for name in dict.fromkeys(config.sources)]
    per_source = config.per_source_cap or config.cap
    seen: set[str] = set()
    queues = []
    for source in sources:
        queues.append(_unique(spread(source.generate(chunks, graph, config), config.seed, source.name), seen)
                      [:per_source])
    chosen: list[PseudoQuery] = []
    taken: set[str] = set()
    for query in interleave(queues):
        key = _key(query.text)
        if key not in taken:
            taken.add(key)
            chosen.append(query)
            if len(chosen) == config.cap:
                break
    return chosen


def spread(candidates: Iterable[Candidate], seed: int, salt: str) -> list[PseudoQuery]:
    """The queries in rounds over their groups, groups and queries within a group in seeded orders."""
    groups: dict[str, list[PseudoQuery]] = defaultdict(list)
    for candidate in candidates:
        groups[candidate.group].append(candidate.query)
    order = sorted(groups, key=lambda group: seeded_fraction(seed, f"{salt}|group|{group}"))
    return interleave(sorted(groups[g], key=lambda q: seeded_fraction(seed, f"{salt}|query|{q.id}")) for g in order)


def interleave(lists: Iterable[Sequence[T]]) -> list[T]:
    """The first item of each list, then the second of each, and so on (shorter lists drop out)."""
    rounds = zip_longest(*lists, fillvalue=_MISSING)
    return [item for row in rounds for item in row if item is not _MISSING]  # type: ignore[misc]


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def _unique(queries: Iterable[PseudoQuery], seen: set[str]) -> list[PseudoQuery]:
    """The queries whose text no earlier one of this source had (``seen`` is this source's own set)."""
    kept = []
    for query in queries:
        key = _key(query.text)
        if key not in seen:
            seen.add(key)
            kept.append(query)
    return kept
