"""Stage ``mine``: hard negatives for the train and dev pairs, with false-negative control."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from fieldtune.config import BuildConfig
from fieldtune.mining import mine_with_model
from fieldtune.stages.artifacts import CHUNKS, GRAPH, MINED, PAIR_TEXTS, PAIRS
from fieldtune.stages.base import Stage, StageContext
from fieldtune.training_reach import dev_within_reach, pairs_within_reach
from fieldtune.workdir import write_jsonl

MINED_SPLITS = ("train", "dev")


def run(ctx: StageContext) -> Mapping[str, Any]:
    texts = ctx.artifacts.all_texts()
    concepts = {c.id: c for c in ctx.artifacts.graph().concepts}
    precision = ctx.config.encode_precision().value
    stats: dict[str, Any] = {}
    # only what the training budget can reach (fieldtune.training_reach)
    train, offered = ctx.config.train_config(), ctx.artifacts.pairs("train")
    seed = ctx.config.mining.seed
    reach = pairs_within_reach(offered, texts, base=ctx.config.base, budget_minutes=train.budget_minutes,
                               batch_size=train.batch_size, max_seq_length=train.max_seq_length, seed=seed)
    stats["reach"] = reach.stats(len(offered))
    for split in MINED_SPLITS:
        if split == "train":
            pairs = reach.pairs
        else:
            pairs = dev_within_reach(ctx.artifacts.pairs(split), reach, offered=len(offered),
                                     batch_size=train.batch_size, seed=seed)
            stats["reach"]["dev_pairs_mined"] = len(pairs)
        mined, mining_stats = mine_with_model(pairs, texts, concepts, model=ctx.config.base,
                                              config=ctx.config.mining, precision=precision)
        write_jsonl(ctx.output(f"{MINED}/{split}.jsonl"), (p.to_dict() for p in mined))
        stats[split] = mining_stats.to_dict()
    return stats


def _params(config: BuildConfig) -> Mapping[str, Any]:
    train = config.train_config()
    return {**asdict(config.mining), "model": config.base, "precision": config.encode_precision().value,
            "reach": {"budget_minutes": train.budget_minutes, "batch_size": train.batch_size,
                      "max_seq_length": train.max_seq_length}}


STAGE = Stage(
    name="mine",
    inputs=(CHUNKS, GRAPH, f"{PAIRS}/train.jsonl", f"{PAIRS}/dev.jsonl", PAIR_TEXTS),
    outputs=tuple(f"{MINED}/{split}.jsonl" for split in MINED_SPLITS),
    run=run,
    params=_params,
    enabled=BuildConfig.trains_full_model,
)
