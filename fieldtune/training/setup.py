"""Building a run from a config and a loaded model: the plan, prompts, loss and trainer."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import Version

from fieldtune.evaluate.systems import default_dims
from fieldtune.training.config import TrainConfig, TrainPrecision
from fieldtune.training.data import Columns, column_role
from fieldtune.training.distributed import ddp_backend, world_size
from fieldtune.training.errors import TrainConfigError
from fieldtune.training.losses import LOSSES, st_losses
from fieldtune.training.runtime import Hardware

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from torch import nn
    from transformers import EarlyStoppingCallback, TrainerCallback

logger = logging.getLogger("fieldtune.training")

DEFAULT_QUERY_PROMPT = "query: "
DEFAULT_DOCUMENT_PROMPT = "passage: "

_LAYER_RE = re.compile(r"\.(?:layer|layers|block|h)\.(\d+)\.")
_EMBEDDING_RE = re.compile(r"(?:^|\.)(?:embeddings|embed_tokens|wte|wpe|shared)\.")


@dataclass(frozen=True)
class RunPlan:
    """Step counts and schedules derived from the config and the data size."""

    batch_size: int
    steps_per_epoch: int
    max_steps: int
    capped_by_max_steps: bool
    eval_every: int
    log_every: int
    has_dev: bool
    eval_on_start: bool


def plan_run(config: TrainConfig, *, n_examples: int, has_dev: bool, resuming: bool) -> RunPlan:
    """How many steps to run and how often to evaluate, save and log.

    The default evaluation interval is about 10% of an epoch and at least 10
    steps; the trainer also evaluates and saves at the last step. The dev loss
    of the base model is measured first (``eval_on_start``) unless resuming.
    """
    batch_size = min(config.batch_size, n_examples)
    if batch_size < config.batch_size:
        logger.warning(
            "only %d training examples: batch size lowered from %d", n_examples, config.batch_size
        )
    # under torchrun each of the N processes takes its own batch per step: an epoch is N times shorter
    steps_per_epoch = math.ceil(n_examples / (batch_size * world_size()))
    epoch_steps = max(1, math.ceil(config.epochs * steps_per_epoch))
    capped = config.max_steps is not None and config.max_steps < epoch_steps
    max_steps = config.max_steps if capped and config.max_steps is not None else epoch_steps
    eval_every = config.eval_every_steps or max(10, round(0.1 * steps_per_epoch))
    return RunPlan(
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        max_steps=max_steps,
        capped_by_max_steps=capped,
        eval_every=eval_every,
        log_every=max(1, min(10, eval_every)),
        has_dev=has_dev,
        eval_on_start=has_dev and not resuming,
    )


def resolve_prompts(config: TrainConfig, model: SentenceTransformer) -> dict[str, str]:
    """``{"query": ..., "document": ...}``: the config's, else the base model's, else E5-style."""
    saved = {name: text for name, text in (model.prompts or {}).items() if text}
    query = config.query_prompt
    if query is None:
        query = saved.get("query", DEFAULT_QUERY_PROMPT)
    document = config.document_prompt
    if document is None:
        document = (
            saved.get("document")
            or saved.get("passage")
            or saved.get("corpus")
            or DEFAULT_DOCUMENT_PROMPT
        )
    return {"query": query, "document": document}


def resolve_matryoshka(config: TrainConfig, dimension: int) -> tuple[list[int], list[float]]:
    """Matryoshka dimensions (largest first) and their loss weights, checked against the model."""
    dims = list(config.matryoshka_dims) if config.matryoshka_dims else default_dims(dimension)
    weights = list(config.matryoshka_weights) if config.matryoshka_weights else [1.0] * len(dims)
    if len(weights) != len(dims):
        raise TrainConfigError(
            f"matryoshka_weights has {len(weights)} values but the dimensions {dims} "
            f"(derived from the model) are {len(dims)}"
        )
    too_big = [d for d in dims if d > dimension]
    if too_big:
        raise TrainConfigError(
            f"matryoshka_dims {too_big} exceed the model's embedding dimension {dimension}"
        )
    order = sorted(range(len(dims)), key=lambda i: -dims[i])
    return [dims[i] for i in order], [weights[i] for i in order]


def freeze_layers(model: nn.Module, count: int) -> int:
    """Freeze the embeddings and the first ``count`` layers; returns how many tensors froze."""
    if count == 0:
        return 0
    named = list(model.named_parameters())
    layers = {int(m.group(1)) for name, _ in named if (m := _LAYER_RE.search(name))}
    if not layers:
        raise TrainConfigError(
            f"freeze_layers={count}: this model has no numbered transformer layers to freeze"
        )
    if count > max(layers) + 1:
        raise TrainConfigError(
            f"freeze_layers={count}, but the model has only {max(layers) + 1} layers"
        )
    frozen = 0
    for name, parameter in named:
        layer = _LAYER_RE.search(name)
        if _EMBEDDING_RE.search(name) or (layer and int(layer.group(1)) < count):
            parameter.requires_grad_(False)
            frozen += 1
    return frozen


def build_loss(
    model: SentenceTransformer, config: TrainConfig, dims: list[int], weights: list[float]
) -> nn.Module:
    """MatryoshkaLoss around the registered loss ``config.loss`` (see :mod:`fieldtune.training.losses`)."""
    inner = LOSSES[config.loss].build(model, config)
    return st_losses().MatryoshkaLoss(
        model, inner, matryoshka_dims=dims, matryoshka_weights=weights
    )


def _training_arguments(
    config: TrainConfig,
    plan: RunPlan,
    hardware: Hardware,
    column_prompts: dict[str, str],
    output_dir: Path,
) -> Any:
    from sentence_transformers import SentenceTransformerTrainingArguments
    from transformers import __version__ as transformers_version

    try:
        from sentence_transformers.base.sampler import BatchSamplers
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.training_args import BatchSamplers  # type: ignore[no-redef]

    # transformers 5 takes the warmup ratio as a float warmup_steps and deprecates warmup_ratio.
    warmup = (
        {"warmup_steps": config.warmup_ratio}
        if Version(transformers_version).major >= 5
        else {"warmup_ratio": config.warmup_ratio}
    )
    return SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=plan.batch_size,
        per_device_eval_batch_size=plan.batch_size,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=plan.max_steps,
        lr_scheduler_type="linear",
        **warmup,
        eval_strategy="steps" if plan.has_dev else "no",
        eval_steps=plan.eval_every,
        eval_on_start=plan.eval_on_start,
        save_strategy="steps",
        save_steps=plan.eval_every,
        save_total_limit=2,
        load_best_model_at_end=plan.has_dev,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_strategy="steps",
        logging_steps=plan.log_every,
        report_to="none",
        disable_tqdm=True,
        seed=config.seed,
        data_seed=config.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        prompts=column_prompts or None,
        use_cpu=hardware.device == "cpu",
        bf16=hardware.precision is TrainPrecision.BF16,
        fp16=hardware.precision is TrainPrecision.FP16,
        dataloader_num_workers=0,
        dataloader_pin_memory=hardware.device == "cuda",
        ddp_backend=ddp_backend(hardware.device) if world_size() > 1 else None,
    )


def distributed_eval_batch(dev_cols: Columns, batch_size: int) -> int:
    """A dev batch each process can fill under DDP, where incomplete batches are dropped.

    Batches hold no value twice (the no-duplicates sampler), so a dev set of a few
    distinct anchors (a build's concept names, say) fills no batch of the training
    size in each of N processes, and would leave no dev loss at all.
    """
    distinct = [len(set(map(str, values))) for name, values in dev_cols.as_dict().items() if name != "label" and values]
    return max(1, min(batch_size, min(distinct, default=batch_size) // world_size()))


def build_trainer(
    model: SentenceTransformer,
    loss: nn.Module,
    train_cols: Columns,
    dev_cols: Columns,
    *,
    plan: RunPlan,
    config: TrainConfig,
    hardware: Hardware,
    prompts: dict[str, str],
    output_dir: Path,
    callbacks: list[TrainerCallback],
) -> tuple[SentenceTransformerTrainer, EarlyStoppingCallback | None]:
    """The sentence-transformers trainer, with our progress callback instead of its own."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer
    from transformers import EarlyStoppingCallback
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_callback import ProgressCallback as HFProgressCallback

    train_data = train_cols.as_dict()
    roles = {column: column_role(column) for column in train_data}
    column_prompts = {
        column: prompts[role] for column, role in roles.items() if role is not None and prompts[role]
    }
    args = _training_arguments(config, plan, hardware, column_prompts, output_dir)
    if plan.has_dev and world_size() > 1:
        args.per_device_eval_batch_size = distributed_eval_batch(dev_cols, plan.batch_size)
    early = None
    if plan.has_dev and config.early_stopping_patience > 0:
        early = EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(train_data),
        eval_dataset=Dataset.from_dict(dev_cols.as_dict()) if plan.has_dev else None,
        loss=loss,
        callbacks=[*callbacks, *([early] if early else [])],
    )
    trainer.remove_callback(HFProgressCallback)
    trainer.remove_callback(PrinterCallback)
    return trainer, early
