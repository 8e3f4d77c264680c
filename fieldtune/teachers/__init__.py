"""Teachers: score each training query's candidate chunks, so a student can learn the teacher's ranking.

>>> pool = CandidatePool.from_chunks(chunks, Encoder(base))      # doctest: +SKIP
>>> teacher = make_teacher("hybrid", labels=chunk_positives(labelled, pool))  # doctest: +SKIP
>>> scored = teacher.score(queries, pool, k=50)                   # doctest: +SKIP
>>> write_scored_queries("teacher/scored.jsonl", scored)          # doctest: +SKIP

Why a teacher: a strong general base model is hurt or unmoved by contrastive
training on pseudo-pairs, while distilling a stronger ranker on queries that
look like the users' moves it (issue 14). Our stronger ranker is search's own
hybrid (:mod:`fieldtune.teachers.hybrid`); with judgements, the labels teacher
(:mod:`fieldtune.teachers.labels`) adds them on top of another teacher.

Every teacher ranks the same :class:`CandidatePool` (:mod:`fieldtune.teachers.pool`):
the chunks, their base-model document vectors (encoded once, cached) and a BM25
index, shared with the evaluation of the dev queries.

Adding a teacher
----------------
A second dense model, a cross-encoder or an LLM judge is one new module,
``teachers/<name>.py``, with a class that has a ``name`` and a
``score(queries, corpus, k) -> list[ScoredQuery]`` method (the :class:`Teacher`
protocol: one record per query, candidates best first, each a chunk id of
``corpus``), registered at the end of that module::

    TEACHERS.register("mpnet", lambda options: DenseTeacher("all-mpnet-base-v2"))

plus its import line below. If it needs a setting, add a field to
:class:`TeacherOptions` (validated there). Teachers that combine others (as
the hybrid fuses BM25 and dense) should normalise each source's scores over
the candidates, as :func:`fieldtune.search.fusion.fused_over_candidates` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fieldtune.teachers.base import TEACHERS, Teacher, TeacherFactory, TeacherOptions
from fieldtune.teachers.hybrid import HybridTeacher
from fieldtune.teachers.labels import LabelsTeacher, chunk_positives
from fieldtune.teachers.pool import CandidatePool, TextEncoder
from fieldtune.teachers.records import read_scored_queries, write_scored_queries

__all__ = [
    "TEACHERS",
    "CandidatePool",
    "HybridTeacher",
    "LabelsTeacher",
    "Teacher",
    "TeacherFactory",
    "TeacherOptions",
    "TextEncoder",
    "chunk_positives",
    "make_teacher",
    "read_scored_queries",
    "write_scored_queries",
]


def make_teacher(
    name: str = HybridTeacher.name,
    *,
    options: TeacherOptions | None = None,
    labels: Mapping[str, Sequence[str]] | None = None,
) -> Teacher:
    """The registered teacher ``name``, wrapped in the labels teacher when ``labels`` (query id -> chunk ids) are given.

    An unknown name raises :class:`~fieldtune.registry.UnknownNameError` listing the known ones.
    """
    teacher = TEACHERS[name](options or TeacherOptions())
    return LabelsTeacher(teacher, labels) if labels is not None else teacher
