"""Stage ``gate``: install the best of trained / averaged-with-base / base (scored on the dev split) as model/."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fieldtune.config import BuildConfig
from fieldtune.encoding import Encoder, document_text
from fieldtune.errors import FieldtuneError
from fieldtune.evaluate.beir import load_beir
from fieldtune.evaluate.fusion_weight import choose_dense_weight
from fieldtune.evaluate.pooled import pooled_dev_set
from fieldtune.gate import average_with_base, run_gate, run_teacher_gate
from fieldtune.model_record import GateRecord, ModelRecord
from fieldtune.models import load_model
from fieldtune.rotation import add_rotation
from fieldtune.stages.artifacts import (
    ADAPTED,
    ADAPTED_MODEL,
    CHUNKS,
    DERIVED_DEV,
    MODEL,
    QUERY_DEV_SET,
    SCORED,
    TRAINED_MODEL,
    TRAINING,
)
from fieldtune.stages.base import Stage, StageContext
from fieldtune.training.query_model import average_query_route
from fieldtune.workdir import read_jsonl

logger = logging.getLogger("fieldtune.stages.gate")

KEPT_BASE = f"{TRAINING}/base-kept"
QUERY_SIDE_CANDIDATES = ("adapted", "adapted-averaged")
FINAL = f"{TRAINING}/final"
#: the dev set cut down to a pool of documents (fieldtune.evaluate.pooled) when its corpus is large
GATE_DEV = f"{TRAINING}/gate-dev"


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


def _candidates(ctx: StageContext) -> dict[str, Path]:
    """The trained models this build offers the gate, in order of preference on a tie."""
    config = ctx.config
    candidates: dict[str, Path] = {}
    if config.trains_full_model():
        trained = ctx.artifacts.path(TRAINED_MODEL)
        candidates["trained"] = trained
        candidates["averaged"] = average_with_base(trained, config.base, ctx.output(f"{TRAINING}/averaged"),
                                                   config.gate.average_alpha)
    if config.adapts_query_side():
        adapted = ctx.artifacts.path(ADAPTED_MODEL)
        candidates["adapted"] = adapted
        candidates["adapted-averaged"] = average_query_route(adapted, config.base, config.gate.average_alpha,
                                                             ctx.output(f"{ADAPTED}/averaged"))
    return candidates


def _dev_data(ctx: StageContext) -> tuple[Path, bool]:
    """The dev set the gate scores on, and whether it holds the user's own queries."""
    if ctx.config.has_supervision():
        user_dev = ctx.artifacts.path(QUERY_DEV_SET)
        if (user_dev / "queries.jsonl").is_file():
            return user_dev, True
    return ctx.artifacts.path(DERIVED_DEV), False


def _teacher_gate(ctx: StageContext, candidates: dict[str, Path]) -> GateRecord | None:
    """On the user's unlabelled dev queries with query-side candidates only: score by agreement with the teacher."""
    config = ctx.config
    if not config.has_supervision() or any(name not in QUERY_SIDE_CANDIDATES for name in candidates):
        return None
    dev = ctx.artifacts.scored_queries("dev")
    if not dev or any(item.positive_ids for item in dev):
        return None  # labelled dev queries are judged by their labels (run_gate)
    texts = ctx.artifacts.chunk_texts()
    ids = list(texts)
    vectors = Encoder(config.base, precision=config.encode_precision()).encode([texts[i] for i in ids], kind="document")
    side = config.query_side_config()
    return run_teacher_gate(candidates, config.base, dev, dict(zip(ids, vectors, strict=True)),
                            teacher_temperature=side.teacher_temperature, student_temperature=side.student_temperature,
                            precision=config.encode_precision(), seed=config.seed, require_significance=False)


def run(ctx: StageContext) -> Mapping[str, Any]:
    config = ctx.config
    candidates = _candidates(ctx)
    dev, users_queries = _dev_data(ctx)
    record = _teacher_gate(ctx, candidates)
    if record is not None:
        source = Path(record.directory) if record.chosen != "base" else _base_copy(ctx, next(iter(candidates.values())))
    elif not (dev / "queries.jsonl").is_file() or not any(read_jsonl(dev / "queries.jsonl")):
        first = next(iter(candidates))
        logger.warning("no dev queries: the quality gate cannot run; installing the %s model", first)
        record = GateRecord.not_run("no dev queries", chosen=first)
        source = candidates[first]
    else:
        dev = pooled_dev_set(dev, ctx.output(GATE_DEV), config.base, config.encode_precision())
        record = run_gate(candidates, config.base, dev, config=config.gate, precision=config.encode_precision(),
                          seed=config.seed, require_significance=not users_queries)
        source = Path(record.directory) if record.chosen != "base" else _base_copy(ctx, next(iter(candidates.values())))
    # The fusion weight is scored with the weights the gate already encoded its dev set with (the kept base's
    # saved copy, or the winner with a rotation appended, would encode it again): a rotation changes no cosine
    # at full dimension, the dense scores the weight is chosen on.
    scored = ctx.config.base if record.chosen == "base" else str(source)
    # The rotation is appended to both routes of a model: a query-side build keeps the base's document
    # vectors (indexes built with the base stay valid), whichever candidate wins, so only a build that trains
    # the full model alone rotates.
    if config.rotate and record.chosen not in QUERY_SIDE_CANDIDATES and not config.adapts_query_side():
        final = ctx.output(FINAL)
        if final.exists():
            shutil.rmtree(final)
        shutil.copytree(source, final)
        record = record.with_rotation(add_rotation(final, _rotation_texts(ctx, dev, record.chosen), seed=config.seed,
                                                   precision=config.encode_precision().value, source=scored))
        source = final
    install_model(source, ctx.output(MODEL))
    record = record.with_hybrid(_hybrid_weight(ctx, dev, scored)).relative_to(ctx.workdir.root)
    record.write(ctx.output(MODEL))
    return record.stats()


def _rotation_texts(ctx: StageContext, dev: Path, chosen: str) -> list[str]:
    """Chunks to fit the rotation on, among those the model it rotates has encoded (read from the cache).

    Mining encoded every chunk with the base; a trained winner encoded the gate's pool of them.
    """
    if chosen != "base" and dev == ctx.output(GATE_DEV):
        pool = load_beir(dev)
        return [document_text(doc.title, doc.text) for doc in pool.corpus.values()]
    return list(ctx.artifacts.chunk_texts().values())


def _hybrid_weight(ctx: StageContext, dev: Path, model: str) -> dict[str, Any] | None:
    """The fusion weight for the installed model, chosen only on dev queries the user judged (``--train-data``).

    Other dev sets would mislead it. The derived set's concept-name queries are
    found by their words, so it picks BM25-heavy weights (0.1 on SciFact) that
    cost real queries 0.03-0.06 nDCG@10 against search's default (SciFact,
    CISI; base model). Unlabelled dev queries are judged by the hybrid teacher
    itself, which makes the choice circular (0.4 on SciFact: tuned hybrid
    -0.005 to -0.007 against the base's, where the default gave +0.002).
    None keeps search's default weight.
    """
    if not ctx.config.train_data:
        return None
    if not (dev / "queries.jsonl").is_file():
        return None
    chosen = choose_dense_weight(model, dev, ctx.config.encode_precision())
    if chosen is not None:
        logger.info("hybrid fusion: dense weight %s on %s (nDCG@10 %s)", chosen["dense_weight"], dev.name,
                    chosen["scores"][str(chosen["dense_weight"])])
    return chosen


def _params(config: BuildConfig) -> Mapping[str, Any]:
    return {**asdict(config.gate), "precision": config.encode_precision().value, "base": config.base,
            "rotate": config.rotate, "mode": config.training_mode().value}


STAGE = Stage(
    name="gate",
    inputs=(TRAINED_MODEL, ADAPTED_MODEL, DERIVED_DEV, QUERY_DEV_SET, f"{SCORED}/dev.jsonl", CHUNKS),
    outputs=(MODEL,),
    scratch=(TRAINING, ADAPTED, f"{MODEL}.new", f"{MODEL}.old"),
    run=run,
    params=_params,
)
