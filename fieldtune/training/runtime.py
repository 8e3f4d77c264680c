"""The machine side of training: device and precision, quiet libraries, timing one step.

What the machine has (CUDA, native bf16, threads) is asked of :mod:`fieldtune.hardware`;
this module holds only training's own rule on top of it (fp16 on CUDA without bf16, an
explicit device or precision that the machine cannot honour). Nothing here knows about
pairs or files; :mod:`fieldtune.training.trainer` composes these pieces.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fieldtune import hardware
from fieldtune.training.config import TrainConfig, TrainDevice, TrainPrecision
from fieldtune.training.errors import TrainConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer

logger = logging.getLogger("fieldtune.training")


@dataclass(frozen=True)
class Hardware:
    """The resolved device (``"cpu"`` or ``"cuda"``) and precision (never ``auto``)."""

    device: str
    precision: TrainPrecision


def resolve_hardware(config: TrainConfig) -> Hardware:
    """Pick the device and precision: CUDA when present, bf16 where the hardware has it."""
    has_cuda = hardware.cuda_available()
    if config.device is TrainDevice.CUDA and not has_cuda:
        import torch

        raise TrainConfigError(
            f"device cuda was asked for, but torch {torch.__version__} sees no CUDA device"
        )
    device = (
        "cuda"
        if config.device is TrainDevice.CUDA or (config.device is TrainDevice.AUTO and has_cuda)
        else "cpu"
    )
    precision = config.precision
    if device == "cuda":
        bf16_ok = hardware.supports_bf16("cuda")
        if precision is TrainPrecision.AUTO:
            precision = TrainPrecision.BF16 if bf16_ok else TrainPrecision.FP16
        elif precision is TrainPrecision.BF16 and not bf16_ok:
            raise TrainConfigError(
                "this CUDA device does not support bf16; use precision fp16 or fp32"
            )
    else:
        if precision is TrainPrecision.FP16:
            raise TrainConfigError(
                "fp16 training needs a CUDA device; on a CPU use precision bf16 or fp32"
            )
        native = hardware.supports_bf16("cpu")
        if precision is TrainPrecision.AUTO:
            precision = TrainPrecision.BF16 if native else TrainPrecision.FP32
        elif precision is TrainPrecision.BF16 and not native:
            logger.warning(
                "this CPU has no native bf16 instructions: bf16 autocast will be emulated and slow"
            )
    return Hardware(device=device, precision=precision)


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence transformers/datasets progress bars and info logs inside the block only."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets_bars_were_on: Any = None
    with contextlib.suppress(ImportError):
        import datasets

        datasets_bars_were_on = not datasets.are_progress_bars_disabled()
        datasets.disable_progress_bars()
    st_logger = logging.getLogger("sentence_transformers")
    st_level = st_logger.level
    st_logger.setLevel(logging.WARNING)
    # The model card's "Computing widget examples" bar is a module-level tqdm: silence it here.
    card_module: Any = None
    with contextlib.suppress(ImportError):
        from sentence_transformers.base import model_card as card_module
    card_tqdm = getattr(card_module, "tqdm", None)
    if card_tqdm is not None:
        card_module.tqdm = functools.partial(card_tqdm, disable=True)
    try:
        yield
    finally:
        if card_tqdm is not None:
            card_module.tqdm = card_tqdm
        hf_logging.set_verbosity(verbosity)
        if hf_bars:
            hf_logging.enable_progress_bar()
        if datasets_bars_were_on:
            import datasets

            datasets.enable_progress_bars()
        st_logger.setLevel(st_level)


@dataclass(frozen=True)
class StepTiming:
    """Measured seconds of one training step and one forward-only (evaluation) batch."""

    step_seconds: float
    forward_seconds: float


def time_one_step(trainer: SentenceTransformerTrainer, rows: list[dict[str, str]]) -> StepTiming:
    """Time a real forward+backward (and a forward-only pass) of one batch, leaving no gradients.

    Runs the step twice and keeps the second (the first pays one-off kernel
    and cache set-up), under the trainer's own mixed-precision autocast.
    """
    import torch

    model = trainer.model
    inputs = trainer.data_collator(rows)
    inputs = {
        k: v.to(trainer.args.device) if isinstance(v, torch.Tensor) else v
        for k, v in inputs.items()
    }
    was_training = model.training
    model.train()
    step_seconds = math.inf
    try:
        for _ in range(2):
            started = time.perf_counter()
            with trainer.accelerator.autocast():
                loss = trainer.compute_loss(model, dict(inputs))
            loss.backward()
            step_seconds = time.perf_counter() - started
            model.zero_grad(set_to_none=True)
        model.eval()
        started = time.perf_counter()
        with torch.no_grad(), trainer.accelerator.autocast():
            trainer.compute_loss(model, dict(inputs))
        forward_seconds = time.perf_counter() - started
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return StepTiming(step_seconds=step_seconds, forward_seconds=forward_seconds)


def estimated_save_seconds(model: SentenceTransformer) -> float:
    """Seconds to write one checkpoint, from a timed save of the model alone.

    A checkpoint holds the model plus the two AdamW moments (twice the weights
    again, written without a model card), so it is estimated at three model
    saves plus a small constant; the budget callback replaces the estimate with
    the real time once the first checkpoint is written.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fieldtune-save-probe-") as tmp:
        started = time.perf_counter()
        model.save(tmp)
        seconds = time.perf_counter() - started
    return 0.2 + 3 * seconds
