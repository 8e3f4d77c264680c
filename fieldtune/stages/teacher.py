"""Stage ``teacher``: the teacher scores each query's candidate chunks (teacher/train.jsonl, dev.jsonl).

The candidates of a query are the union of the top ``teacher_k`` chunks by BM25
and by the base model; the default teacher is search's own hybrid fusion of the
two (a stronger ranker than the base alone). With labelled pairs, the judged
chunks are recorded as positives. A pseudo-query cut out of a document
(inverse cloze) loses that document's chunks from its candidates. The
held-out dev queries also become a BEIR set over the chunks
(``teacher/dev-set``) on which the quality gate scores candidates: its
judgements are the user's labels where given, else the teacher's top ten.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from fieldtune.config import BuildConfig
from fieldtune.encoding import Encoder
from fieldtune.evaluate.beir import write_beir
from fieldtune.pseudo_queries import drop_source_documents
from fieldtune.stages.artifacts import CHUNKS, QUERY_DEV_SET, SCORED, USER_QUERIES
from fieldtune.stages.base import Stage, StageContext
from fieldtune.teachers import CandidatePool, chunk_positives, make_teacher, write_scored_queries
from fieldtune.types import Chunk, Document, EvalSet, LabelledQuery, Qrels, ScoredQuery

#: how many of the teacher's best candidates count as relevant for an unlabelled dev query
DEV_TEACHER_DEPTH = 10


def dev_set(chunks: Sequence[Chunk], scored: Sequence[ScoredQuery]) -> EvalSet:
    """The dev queries as a retrieval set over the chunks (labels where given, else the teacher's top ten)."""
    qrels: Qrels = {}
    for item in scored:
        relevant = item.positive_ids or item.candidate_ids[:DEV_TEACHER_DEPTH]
        qrels[item.query_id] = {chunk_id: 1 for chunk_id in relevant}
    corpus = {c.id: Document(id=c.id, text=c.text, title=c.title) for c in chunks}
    return EvalSet(name="dev", corpus=corpus, queries={s.query_id: s.text for s in scored}, qrels=qrels)


def run(ctx: StageContext) -> Mapping[str, Any]:
    config = ctx.config
    chunks = ctx.artifacts.chunks()
    pool = CandidatePool.from_chunks(chunks, Encoder(config.base, precision=config.encode_precision()))
    doc_of = {c.id: c.doc_id for c in chunks}
    stats: dict[str, Any] = {}
    for split in ("train", "dev"):
        queries = ctx.artifacts.user_queries(split)
        labelled = [q for q in queries if isinstance(q, LabelledQuery)]
        teacher = make_teacher(config.teacher, options=config.teacher_options,
                               labels=chunk_positives(labelled, pool) if labelled else None)
        scored = drop_source_documents(teacher.score(queries, pool, k=config.teacher_k), queries, doc_of)
        write_scored_queries(ctx.output(f"{SCORED}/{split}.jsonl"), scored)
        stats[split] = {"queries": len(scored), "mean_candidates": round(
            sum(len(s.candidate_ids) for s in scored) / max(len(scored), 1), 1)}
        if split == "dev" and scored:
            write_beir(dev_set(chunks, scored), ctx.output(QUERY_DEV_SET))
    return stats


def _params(config: BuildConfig) -> Mapping[str, Any]:
    return {"teacher": config.teacher, "k": config.teacher_k, "options": asdict(config.teacher_options),
            "base": config.base, "precision": config.encode_precision().value}


STAGE = Stage(
    name="teacher",
    inputs=(CHUNKS, USER_QUERIES),
    outputs=(f"{SCORED}/train.jsonl", f"{SCORED}/dev.jsonl", QUERY_DEV_SET),
    run=run,
    params=_params,
    enabled=BuildConfig.adapts_query_side,
)
