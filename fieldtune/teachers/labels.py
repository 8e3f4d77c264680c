"""The labels teacher: another teacher's candidates and scores, plus the user's judged positives.

With labelled data (``build --train-data``) the judgements are the best
supervision there is, but the label losses still need candidates to contrast
the positives with, and a teacher's scores to keep false negatives out
(a candidate the teacher scores above a positive is likely relevant too).
So this teacher keeps the wrapped teacher's ranking, records the judged
positives on each record (:attr:`~fieldtune.types.ScoredQuery.positive_ids`),
and puts any positive the teacher did not retrieve at the front of the list
with the list's top score: a judged positive is at least as relevant as
anything the teacher found, and a low score would make the false-negative
guard mask every other candidate.

Judgements name documents; a build's candidates are chunks. Every chunk of a
judged document counts as a positive (:func:`chunk_positives`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fieldtune.teachers.base import Teacher
from fieldtune.teachers.pool import CandidatePool
from fieldtune.types import LabelledQuery, Query, ScoredQuery


def chunk_positives(labelled: Sequence[LabelledQuery], corpus: CandidatePool) -> dict[str, tuple[str, ...]]:
    """Query id -> the chunk ids of its judged relevant documents (documents with no chunk drop out)."""
    return {query.id: corpus.chunks_of(query.positive_ids) for query in labelled}


class LabelsTeacher:
    """Wraps ``inner``; ``positives`` maps query ids to their judged relevant chunk ids (see the module docstring)."""

    def __init__(self, inner: Teacher, positives: Mapping[str, Sequence[str]]) -> None:
        self.inner = inner
        self.positives = {query_id: tuple(ids) for query_id, ids in positives.items()}
        self.name = f"{inner.name}+labels"

    def score(self, queries: Sequence[Query], corpus: CandidatePool, k: int) -> list[ScoredQuery]:
        out = []
        for item in self.inner.score(queries, corpus, k):
            positives = self.positives.get(item.query_id, ())
            unknown = [chunk_id for chunk_id in positives if chunk_id not in corpus]
            if unknown:
                raise ValueError(f"query {item.query_id!r}: judged positives {unknown[:3]} are not candidate chunks")
            present = set(item.candidate_ids)
            missing = tuple(chunk_id for chunk_id in positives if chunk_id not in present)
            top = max(item.teacher_scores, default=1.0)
            out.append(ScoredQuery(
                query_id=item.query_id,
                text=item.text,
                candidate_ids=missing + item.candidate_ids,
                teacher_scores=(top,) * len(missing) + item.teacher_scores,
                positive_ids=positives,
            ))
        return out
