"""Stage ``mine``: hard negatives for the train and dev pairs, with false-negative control."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from fieldtune.config import BuildConfig
from fieldtune.mining import mine_with_model
from fieldtune.stages.artifacts import CHUNKS, GRAPH, MINED, PAIR_TEXTS, PAIRS
from fieldtune.stages.base import Stage, StageContext
from fieldtune.workdir import write_jsonl

MINED_SPLITS = ("train", "dev")


def run(ctx: StageContext) -> Mapping[str, Any]:
    texts = ctx.artifacts.all_texts()
    concepts = {c.id: c for c in ctx.artifacts.graph().concepts}
    precision = ctx.config.encode_precision().value
    stats = {}
    for split in MINED_SPLITS:
        mined, mining_stats = mine_with_model(ctx.artifacts.pairs(split), texts, concepts, model=ctx.config.base,
                                              config=ctx.config.mining, precision=precision)
        write_jsonl(ctx.output(f"{MINED}/{split}.jsonl"), (p.to_dict() for p in mined))
        stats[split] = mining_stats.to_dict()
    return stats


def _params(config: BuildConfig) -> Mapping[str, Any]:
    return {**asdict(config.mining), "model": config.base, "precision": config.encode_precision().value}


STAGE = Stage(
    name="mine",
    inputs=(CHUNKS, GRAPH, f"{PAIRS}/train.jsonl", f"{PAIRS}/dev.jsonl", PAIR_TEXTS),
    outputs=tuple(f"{MINED}/{split}.jsonl" for split in MINED_SPLITS),
    run=run,
    params=_params,
    enabled=BuildConfig.trains_full_model,
)
