"""The pair-generator seam: what a generator is given, what it returns, and a seeded spread.

A generator sees the whole corpus (chunks) and the concept graph, and returns
candidate pairs plus any texts it derived (ids that are not chunk ids, such as
a chunk with one sentence removed). Deduplication, the split by group and the
leakage filter are applied afterwards by :func:`fieldtune.pairs.generate_pairs`,
the same way for every generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from fieldtune.hashing import seeded_fraction
from fieldtune.pairs.config import PairConfig
from fieldtune.types import Chunk, Concept, ConceptEdge, Pair, PairKind


class ConceptGraphLike(Protocol):
    """What a generator reads of the concept graph (``fieldtune.concepts.ConceptGraph`` is one)."""

    @property
    def concepts(self) -> Sequence[Concept]: ...

    @property
    def edges(self) -> Sequence[ConceptEdge]: ...


@dataclass(frozen=True)
class GraphParts:
    """Concepts and edges given separately, as a :class:`ConceptGraphLike`."""

    concepts: Sequence[Concept]
    edges: Sequence[ConceptEdge]


@dataclass(frozen=True)
class GeneratedPairs:
    """A generator's candidate pairs, in its order, and the texts of any derived positive ids."""

    pairs: list[Pair]
    derived_texts: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class PairGenerator(Protocol):
    """Makes candidate training pairs of the ``kinds`` it declares (see the package docstring)."""

    name: str
    kinds: tuple[PairKind, ...]

    def generate(self, chunks: Sequence[Chunk], graph: ConceptGraphLike, config: PairConfig) -> GeneratedPairs: ...


def spread(items: Sequence[str], cap: int, key: str, seed: int) -> list[str]:
    """Up to ``cap`` items in a seeded order that does not favour the first documents."""
    return sorted(items, key=lambda item: seeded_fraction(seed, f"{key}|{item}"))[:cap]
