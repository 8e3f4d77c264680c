"""What this machine has: CPU features, CUDA, cores, and how many torch threads to use.

One module, so that a question such as "does bf16 run natively here?" has one
answer for encoding and training alike. CPU features are read once per process
from ``/proc/cpuinfo`` (no torch import: this module is on the CLI start-up
path), or from torch's own probes where that file does not exist. CUDA answers
need torch and are asked of it each time (tests and users may hide devices).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("fieldtune.hardware")

CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class CpuFeatures:
    """The x86 instruction-set extensions that change which kernels are fast here."""

    avx2: bool
    avx512f: bool
    avx512_vnni: bool
    avx512_bf16: bool
    #: AMX tiles with bf16 (Sapphire Rapids and later).
    amx: bool
    #: VNNI on 256-bit vectors (Intel Alder Lake and later client CPUs)
    avx_vnni: bool = False

    @property
    def native_bf16(self) -> bool:
        """bf16 arithmetic in hardware: without it, bf16 is emulated and slower than fp32."""
        return self.avx512_bf16 or self.amx

    @property
    def int8_dot_products(self) -> bool:
        """int8 dot products in one instruction (VNNI): without them int8 models ran slower than fp32 (Zen 3)."""
        return self.avx512_vnni or self.avx_vnni or self.amx


#: Our feature names -> the /proc/cpuinfo flag that proves each.
_CPUINFO_FLAGS = {
    "avx2": "avx2",
    "avx512f": "avx512f",
    "avx512_vnni": "avx512_vnni",
    "avx512_bf16": "avx512_bf16",
    "amx": "amx_bf16",
    "avx_vnni": "avx_vnni",
}

#: Our feature names -> torch.cpu probes, for systems without /proc/cpuinfo.
_TORCH_PROBES = {
    "avx2": "_is_avx2_supported",
    "avx512f": "_is_avx512_supported",
    "avx512_vnni": "_is_vnni_supported",
    "avx512_bf16": "_is_avx512_bf16_supported",
    "amx": "_is_amx_tile_supported",
}


def _cpuinfo_field(name: str) -> str | None:
    """The value of the first ``name`` line of /proc/cpuinfo, or None where there is none."""
    try:
        text = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def _features_from_torch() -> CpuFeatures:
    import torch

    found = {}
    for feature, probe in _TORCH_PROBES.items():
        check = getattr(torch.cpu, probe, None)
        found[feature] = False
        with contextlib.suppress(Exception):  # a probe missing or failing in this torch means "not known here"
            found[feature] = bool(check is not None and check())
    return CpuFeatures(**found)


@functools.cache
def cpu_features() -> CpuFeatures:
    """This CPU's features, read once per process."""
    flags = _cpuinfo_field("flags")
    if flags is None:
        return _features_from_torch()
    present = set(flags.split())
    return CpuFeatures(**{feature: flag in present for feature, flag in _CPUINFO_FLAGS.items()})


@functools.cache
def cpu_model_name() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_count() -> int:
    """Logical cores of the machine (not only those this process may use: load is compared against them)."""
    return os.cpu_count() or 1


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def best_device() -> str:
    """``"cuda"`` when a CUDA device is visible, else ``"cpu"``."""
    return "cuda" if cuda_available() else "cpu"


def supports_bf16(device: str | None = None) -> bool:
    """Whether bf16 is computed natively on ``device`` (default: :func:`best_device`).

    CUDA: the device says so. CPU: AVX-512 BF16 or AMX; elsewhere bf16 is
    emulated, slower than fp32 and no more accurate.
    """
    device = device or best_device()
    if device.startswith("cuda"):
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return cpu_features().native_bf16


def describe() -> dict[str, Any]:
    """A small JSON-ready summary of the machine, for logs, manifests and benchmark tables."""
    cuda = cuda_available()
    gpu = None
    if cuda:
        import torch

        gpu = torch.cuda.get_device_name(0)
    return {
        "cpu": cpu_model_name(),
        "cores": cpu_count(),
        "cpu_features": asdict(cpu_features()),
        "cuda": cuda,
        "gpu": gpu,
        "bf16": supports_bf16(),
    }


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
    try:
        import psutil
    except ImportError:  # an optional extra (fieldtune[train]): without it, keep torch's default
        return None
    cores = cpu_count()
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


def threads_for_idle_cores(sample_seconds: float = 0.5) -> int | None:
    """As many torch threads as there are idle cores (at least one), or None when every core is idle.

    Re-checked at each call (each stage, each corpus encode): oversubscribed OpenMP threads cost
    about 4x on a 2-core machine with one other busy process (ENVIRONMENT.md).
    """
    try:
        import psutil
    except ImportError:
        return None
    cores = cpu_count()
    own = psutil.Process()
    own.cpu_percent(None)
    total = psutil.cpu_percent(interval=sample_seconds) * cores
    others = max(0.0, total - own.cpu_percent(None))
    idle = max(1, cores - round(others / 100.0))
    if idle < cores:
        logger.info("other processes use %.0f%% of a core: encoding with %d thread(s)", others, idle)
        return idle
    return None


def warn_if_cpu_busy(num_threads: int | None) -> None:
    """Warn when other processes already load the CPU: torch's threads then contend badly.

    Measured on a 2-core machine with two other busy processes: a training
    step ran up to 10x slower with two torch threads than with one.
    """
    import torch

    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):  # not available on this platform
        return
    cores = cpu_count()
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
