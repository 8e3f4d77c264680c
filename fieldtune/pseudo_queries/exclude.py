"""Inverse cloze: drop a pseudo-query's source document from the candidates the teacher scored for it.

A sentence cut out of a document is found in that document by string match;
left among the candidates, the teacher would rank it first and the student
would learn string matching. The hybrid teacher's probe on SciFact kept the
other candidates and their scores as they were, and so does this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from fieldtune.types import LabelledQuery, PseudoQuery, Query, ScoredQuery


def drop_source_documents(
    scored: Sequence[ScoredQuery], queries: Sequence[Query | LabelledQuery | PseudoQuery], doc_of: Mapping[str, str]
) -> list[ScoredQuery]:
    """``scored`` without the chunks of each query's ``exclude_doc_id`` (``doc_of``: chunk id -> document id).

    A query left with no candidate is dropped: it has nothing to train on.
    Queries without an excluded document pass unchanged, in order.
    """
    excluded = {q.id: q.exclude_doc_id for q in queries if isinstance(q, PseudoQuery) and q.exclude_doc_id is not None}
    kept = []
    for item in scored:
        doc_id = excluded.get(item.query_id)
        if doc_id is None:
            kept.append(item)
            continue
        rows = [i for i, chunk_id in enumerate(item.candidate_ids) if doc_of.get(chunk_id) != doc_id]
        if rows:
            kept.append(replace(
                item,
                candidate_ids=tuple(item.candidate_ids[i] for i in rows),
                teacher_scores=tuple(item.teacher_scores[i] for i in rows),
                positive_ids=tuple(p for p in item.positive_ids if doc_of.get(p) != doc_id),
            ))
    return kept
