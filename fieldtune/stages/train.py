"""Stage ``train``: fine-tune the base model on the mined pairs (training/model; checkpoints in training/)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from fieldtune import training
from fieldtune.config import BuildConfig
from fieldtune.hashing import json_sha256
from fieldtune.stages.artifacts import CHUNKS, MINED, PAIR_TEXTS, TRAINED_MODEL, TRAINING
from fieldtune.stages.base import Stage, StageContext

#: names the settings of the checkpoints in training/, so a run with other settings never resumes them
CONFIG_KEY = f"{TRAINING}/config-key"


def _params(config: BuildConfig) -> dict[str, Any]:
    return config.train_config().to_dict()


def run(ctx: StageContext) -> Mapping[str, Any]:
    key = json_sha256(_params(ctx.config))[:16]
    training_dir = ctx.output(TRAINING)
    marker = ctx.output(CONFIG_KEY)
    if training_dir.exists() and (not marker.exists() or marker.read_text() != key):
        shutil.rmtree(training_dir)
    training_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(key)
    # Looked up at call time: the trainer module (transformers) loads on first use only.
    result = training.train(ctx.artifacts.mined("train"), ctx.artifacts.mined("dev"), ctx.artifacts.all_texts(),
                   out_dir=training_dir, config=ctx.config.train_config())
    return json.loads(json.dumps(asdict(result), default=str))


STAGE = Stage(
    name="train",
    inputs=(f"{MINED}/train.jsonl", f"{MINED}/dev.jsonl", PAIR_TEXTS, CHUNKS),
    outputs=(TRAINED_MODEL,),
    scratch=(TRAINING,),
    run=run,
    params=_params,
    enabled=BuildConfig.trains_full_model,
)
