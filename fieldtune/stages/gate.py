"""Stage ``gate``: install the best of trained / averaged-with-base / base (scored on the dev split) as model/."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fieldtune.config import BuildConfig
from fieldtune.errors import FieldtuneError
from fieldtune.gate import run_gate
from fieldtune.model_record import GateRecord, ModelRecord
from fieldtune.models import load_model
from fieldtune.rotation import add_rotation
from fieldtune.stages.artifacts import CHUNKS, DERIVED_DEV, MODEL, TRAINED_MODEL, TRAINING
from fieldtune.stages.base import Stage, StageContext
from fieldtune.workdir import read_jsonl

logger = logging.getLogger("fieldtune.stages.gate")

KEPT_BASE = f"{TRAINING}/base-kept"
FINAL = f"{TRAINING}/final"


def _base_copy(ctx: StageContext, trained: Path) -> Path:
    """The base model saved as a build's model (its own prompts, none of the trained ones), with a record saying why."""
    target = ctx.output(KEPT_BASE)
    if target.exists():
        shutil.rmtree(target)
    load_model(ctx.config.base, device="cpu").save(str(target))
    record = ModelRecord.read(trained)
    record.kept_base(note="the quality gate kept the base model's weights").write(target)
    return target


def install_model(source: Path, target: Path) -> None:
    """Move the chosen model into place; the previous one is removed only once the new one is complete."""
    if not ModelRecord.exists(source):
        raise FieldtuneError(f"training finished without a model in {source}")
    staging = target.with_name(target.name + ".new")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(source, staging)
    if target.exists():
        old = target.with_name(target.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old)
    else:
        staging.rename(target)


def run(ctx: StageContext) -> Mapping[str, Any]:
    config = ctx.config
    trained = ctx.artifacts.path(TRAINED_MODEL)
    dev = ctx.artifacts.path(DERIVED_DEV)
    if not (dev / "queries.jsonl").is_file() or not any(read_jsonl(dev / "queries.jsonl")):
        logger.warning("no dev concepts with relevant chunks: the quality gate cannot run; installing the trained model")
        record = GateRecord.not_run("no dev queries")
        source = trained
    else:
        record = run_gate(trained, config.base, dev, ctx.output(TRAINING), config=config.gate,
                          precision=config.encode_precision(), seed=config.seed)
        source = Path(record.directory) if record.chosen != "base" else _base_copy(ctx, trained)
    if config.rotate:
        final = ctx.output(FINAL)
        if final.exists():
            shutil.rmtree(final)
        shutil.copytree(source, final)
        texts = list(ctx.artifacts.chunk_texts().values())
        record = record.with_rotation(add_rotation(final, texts, seed=config.seed,
                                                   precision=config.encode_precision().value))
        source = final
    install_model(source, ctx.output(MODEL))
    record.write(ctx.output(MODEL))
    return record.stats()


def _params(config: BuildConfig) -> Mapping[str, Any]:
    return {**asdict(config.gate), "precision": config.encode_precision().value, "base": config.base,
            "rotate": config.rotate}


STAGE = Stage(
    name="gate",
    inputs=(TRAINED_MODEL, DERIVED_DEV, CHUNKS),
    outputs=(MODEL,),
    scratch=(TRAINING, f"{MODEL}.new", f"{MODEL}.old"),
    run=run,
    params=_params,
)
