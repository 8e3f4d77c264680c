"""Shared helpers for the benchmark scripts: where the data is, and what machine ran them."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fieldtune.hardware import cpu_features

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED_DATA = Path(os.environ.get("FIELDTUNE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def deadline_of(stop_at: str | None) -> float | None:
    """``HH:MM`` (UTC, today) as epoch seconds; None without one (a benchmark slot's end, ``--stop-at``)."""
    if not stop_at:
        return None
    hour, minute = (int(part) for part in stop_at.split(":"))
    return datetime.now(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()


def hardware() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_gib = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    import torch

    return {
        "cpu": cpu, "cpu_flags": [name for name, present in asdict(cpu_features()).items() if present],
        "cores": os.cpu_count(), "memory_gib": memory_gib, "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(), "python": platform.python_version(), "torch": torch.__version__,
        "platform": platform.platform(),
    }


def hardware_line(info: dict[str, Any]) -> str:
    gpu = "CUDA" if info["cuda"] else "no GPU"
    flags = info.get("cpu_flags")  # results written before the flags were recorded lack them
    flags_text = f" ({', '.join(flags) or 'no AVX2 or AVX-512'})" if flags is not None else ""
    return (
        f"{info['cpu']}{flags_text}, {info['cores']} cores, {info['memory_gib']} GiB, {gpu}; "
        f"torch {info['torch']}, Python {info['python']}"
    )


def beir_sets_with_qrels(split: str = "test") -> list[Path]:
    if not SHARED_DATA.is_dir():
        raise SystemExit(f"no data at {SHARED_DATA}: set FIELDTUNE_SHARED_DATA to a folder of BEIR sets")
    return sorted(
        p for p in SHARED_DATA.iterdir() if (p / "qrels" / f"{split}.tsv").is_file() and (p / "corpus.jsonl").is_file()
    )


def write_results(out: Path, payload: dict[str, Any], markdown: str) -> None:
    """``out``.json (the payload) and ``out``.md (the table a README quotes), each written atomically."""
    from fieldtune.workdir import atomic_write, write_json

    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out.with_suffix(".json"), payload)
    with atomic_write(out.with_suffix(".md")) as handle:
        handle.write(markdown)
