"""What a training run returns, and what ``model/fieldtune.json`` records."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from fieldtune.model_record import ModelRecord
from fieldtune.training.config import StoppedBecause


class HistoryPoint(NamedTuple):
    """What was logged at one step: mean training loss since the last log and/or dev loss."""

    step: int
    train_loss: float | None
    eval_loss: float | None


@dataclass
class TrainResult:
    """The outcome of :func:`train`; :meth:`record` is what ``model/fieldtune.json`` holds."""

    model_dir: Path
    base_model: str
    matryoshka_dims: list[int]
    prompts: dict[str, str]
    train_pairs: int
    dev_pairs: int
    train_examples: int
    steps: int
    best_step: int | None
    best_eval_loss: float | None
    stopped_because: StoppedBecause
    seed: int
    precision: str
    device: str
    #: Seconds of the time budget, the runs this one resumed included (``earlier_seconds`` of them).
    seconds: float
    earlier_seconds: float = 0.0
    resumed_from: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    history: list[HistoryPoint] = field(default_factory=list)

    def record(self) -> ModelRecord:
        """The model directory's record of this run (the history stays out: it is in the trainer state)."""
        return ModelRecord(
            base_model=self.base_model,
            matryoshka_dims=tuple(self.matryoshka_dims),
            prompts=dict(self.prompts),
            train_pairs=self.train_pairs,
            dev_pairs=self.dev_pairs,
            train_examples=self.train_examples,
            steps=self.steps,
            best_step=self.best_step,
            best_eval_loss=self.best_eval_loss,
            stopped_because=self.stopped_because.value,
            seed=self.seed,
            precision=self.precision,
            device=self.device,
            seconds=round(self.seconds, 1),
            resumed_from=self.resumed_from,
            config=self.config,
        )


def history_from_logs(log_history: list[dict[str, Any]]) -> list[HistoryPoint]:
    """One point per step at which the trainer logged a training and/or dev loss."""
    points: dict[int, list[float | None]] = {}
    for entry in log_history:
        step = entry.get("step")
        if step is None or ("loss" not in entry and "eval_loss" not in entry):
            continue
        point = points.setdefault(int(step), [None, None])
        if "loss" in entry:
            point[0] = float(entry["loss"])
        if "eval_loss" in entry:
            point[1] = float(entry["eval_loss"])
    return [HistoryPoint(step, train, dev) for step, (train, dev) in sorted(points.items())]
