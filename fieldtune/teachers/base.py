"""The teacher seam: the :class:`Teacher` protocol, its options, and the ``TEACHERS`` registry.

A teacher ranks candidate chunks for each training query and scores them;
query-side training pulls the student's ranking towards those scores. See
:mod:`fieldtune.teachers` for how to add one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from fieldtune.registry import Registry
from fieldtune.search.fusion import DENSE_WEIGHT
from fieldtune.teachers.pool import CandidatePool
from fieldtune.types import Query, ScoredQuery


@runtime_checkable
class Teacher(Protocol):
    """Scores candidates for queries (see the package docstring)."""

    name: str

    def score(self, queries: Sequence[Query], corpus: CandidatePool, k: int) -> list[ScoredQuery]:
        """One record per query, in order: its candidates (chunk ids of ``corpus``), best first, with scores.

        ``k`` bounds the candidates each underlying ranking contributes
        (the hybrid teacher takes the union of two top-``k`` lists).
        """
        ...


@dataclass(frozen=True)
class TeacherOptions:
    """Settings every registered teacher factory receives.

    ``dense_weight`` is the weight of the dense scores in a hybrid teacher
    (BM25 gets the rest), search's fusion weight unless a build chose another on dev.
    """

    dense_weight: float = DENSE_WEIGHT

    def __post_init__(self) -> None:
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ValueError(f"dense_weight must be between 0 and 1, got {self.dense_weight}")


#: Builds a teacher from the options.
TeacherFactory = Callable[[TeacherOptions], Teacher]

#: Teachers by name; each implementation module registers itself.
TEACHERS: Registry[TeacherFactory] = Registry("teacher")
