"""The held-out concepts as a retrieval evaluation set (BEIR layout) over the corpus's chunks."""

from __future__ import annotations

from collections.abc import Sequence

from fieldtune.types import Chunk, Concept, Document, EvalSet, Pair


def derived_eval_set(chunks: Sequence[Chunk], concepts: Sequence[Concept], test_pairs: Sequence[Pair]) -> EvalSet:
    """The held-out concepts as a retrieval task over the corpus's chunks.

    Query: a test concept's name. Relevant: the chunks where that concept is
    central (grade 1). Every chunk of the corpus is a candidate document.
    """
    test_ids = sorted({p.group for p in test_pairs})
    by_id = {c.id: c for c in concepts}
    corpus = {c.id: Document(id=c.id, title=c.title, text=c.text) for c in chunks}
    queries, qrels = {}, {}
    for concept_id in test_ids:
        concept = by_id.get(concept_id)
        relevant = [c for c in concept.central_chunk_ids if c in corpus] if concept else []
        if concept is not None and relevant:
            queries[f"c:{concept_id}"] = concept.name
            qrels[f"c:{concept_id}"] = {chunk_id: 1 for chunk_id in relevant}
    return EvalSet(name="derived", corpus=corpus, queries=queries, qrels=qrels)
