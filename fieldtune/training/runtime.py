"""The machine side of training: device and precision, threads, quiet libraries, timing one step.

Nothing here knows about pairs or files; :mod:`fieldtune.training.trainer`
composes these pieces.
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


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX-512 BF16 or AMX)."""
    import torch

    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, probe, None)
        with contextlib.suppress(Exception):
            if check is not None and check():
                return True
    return False


def resolve_hardware(config: TrainConfig) -> Hardware:
    """Pick the device and precision: CUDA when present, bf16 where the hardware has it."""
    import torch

    has_cuda = torch.cuda.is_available()
    if config.device is TrainDevice.CUDA and not has_cuda:
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
        bf16_ok = torch.cuda.is_bf16_supported()
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
        native = cpu_supports_bf16()
        if precision is TrainPrecision.AUTO:
            precision = TrainPrecision.BF16 if native else TrainPrecision.FP32
        elif precision is TrainPrecision.BF16 and not native:
            logger.warning(
                "this CPU has no native bf16 instructions: bf16 autocast will be emulated and slow"
            )
    return Hardware(device=device, precision=precision)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Use ``count`` intra-op threads inside the block (None: leave torch's setting)."""
    if count is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def threads_for_busy_cpu(sample_seconds: float = 0.5) -> int | None:
    """One torch thread when *other* processes already keep a core busy, else None (torch's default).

    Measured here (2 cores, two other busy processes): bf16 training ran 6.1
    pairs/s with one thread and 2.4 with two, which fight the other work. The
    load average would count this process's own previous stage, so the CPU use
    of other processes is sampled directly.
    """
    import os

    try:
        import psutil
    except ImportError:
        return None
    cores = os.cpu_count() or 1
    if cores < 2:
        return None
    own = psutil.Process()
    own.cpu_percent(None)
    total = psutil.cpu_percent(interval=sample_seconds) * cores  # percent of one core, summed
    others = max(0.0, total - own.cpu_percent(None))
    if others >= 75.0:
        logger.info("other processes use %.0f%% of a core: training with one thread", others)
        return 1
    return None


def warn_if_cpu_busy(num_threads: int | None) -> None:
    """Warn when other processes already load the CPU: torch's threads then contend badly.

    Measured on a 2-core machine with two other busy processes: a training
    step ran up to 10x slower with two torch threads than with one.
    """
    import os

    import torch

    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):  # not available on this platform
        return
    cores = os.cpu_count() or 1
    threads = num_threads or torch.get_num_threads()
    if load >= 0.75 * cores and threads > 1:
        logger.warning(
            "the CPU is already busy (load %.1f on %d cores): %d training threads will contend "
            "with other work; "
            "if training is much slower than expected, set num_threads=1",
            load,
            cores,
            threads,
        )


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
