"""Stage ``pairs``: training pairs split by concept, the leakage check, and the derived evaluation sets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from fieldtune.config import MIN_TRAIN_PAIRS, BuildConfig
from fieldtune.errors import FieldtuneError
from fieldtune.evaluate.beir import write_beir
from fieldtune.pairs import check_leakage, derived_eval_set, generate_pairs
from fieldtune.stages.artifacts import CHUNKS, DERIVED, DERIVED_DEV, GRAPH, PAIR_TEXTS, PAIRS
from fieldtune.stages.base import Stage, StageContext
from fieldtune.stages.ingest import CorpusTooSmallError
from fieldtune.workdir import write_jsonl

SPLITS = ("train", "dev", "test")


class LeakageError(FieldtuneError):
    """The leakage check found held-out text among training anchors."""


def run(ctx: StageContext) -> Mapping[str, Any]:
    chunks = ctx.artifacts.chunks()
    graph = ctx.artifacts.graph()
    pairs = generate_pairs(chunks, graph.concepts, graph.edges, ctx.config.pairs)
    report = check_leakage(pairs.train, pairs.dev + pairs.test, {c.id: c for c in graph.concepts})
    if not report.clean:
        raise LeakageError(f"leakage check failed ({len(report.leaks)} leaks), first: {report.leaks[0]}")
    if len(pairs.train) < MIN_TRAIN_PAIRS:
        raise CorpusTooSmallError(
            f"only {len(pairs.train)} training pairs from {len(chunks)} chunks and {len(graph.concepts)} concepts; "
            f"at least {MIN_TRAIN_PAIRS} are needed. Add documents (a few hundred abstracts is a good start)."
        )
    derived = derived_eval_set(chunks, graph.concepts, pairs.test)
    if not derived.queries:
        raise CorpusTooSmallError("no held-out concept has a relevant chunk; the derived test set would be empty")
    dev_set = derived_eval_set(chunks, graph.concepts, pairs.dev)
    for split in SPLITS:
        write_jsonl(ctx.output(f"{PAIRS}/{split}.jsonl"), (p.to_dict() for p in getattr(pairs, split)))
    write_jsonl(ctx.output(PAIR_TEXTS), ({"id": k, "text": v} for k, v in sorted(pairs.derived_texts.items())))
    write_beir(derived, ctx.output(DERIVED))
    write_beir(dev_set, ctx.output(DERIVED_DEV))
    return {"derived_dev_queries": len(dev_set.queries), "counts": pairs.counts(), "dropped": dict(pairs.dropped),
            "leakage": report.to_dict(), "derived_queries": len(derived.queries)}


def _params(config: BuildConfig) -> Mapping[str, Any]:
    return asdict(config.pairs) | {"kinds": [k.value for k in config.pairs.kinds]}


STAGE = Stage(
    name="pairs",
    inputs=(CHUNKS, GRAPH),
    outputs=tuple(f"{PAIRS}/{split}.jsonl" for split in SPLITS) + (PAIR_TEXTS, DERIVED, DERIVED_DEV),
    run=run,
    params=_params,
)
