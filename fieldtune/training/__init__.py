"""The training stage: (anchor, chunk) pairs -> a fine-tuned sentence-transformers model.

Needs the ``train`` extra (``pip install 'fieldtune[train]'``: datasets and
accelerate); importing this package works without it, :func:`train` says
what is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fieldtune.training.config import (
    StoppedBecause,
    TrainConfig,
    TrainDevice,
    TrainPrecision,
)
from fieldtune.training.errors import (
    BudgetTooSmallError,
    TrainConfigError,
    TrainingDataError,
    TrainingDivergedError,
)
from fieldtune.training.result import HistoryPoint, TrainResult

if TYPE_CHECKING:
    from fieldtune.training.trainer import train

_LAZY = {"train"}


def __getattr__(name: str) -> Any:
    # The trainer imports transformers (seconds); load it on first use so that
    # reading a TrainConfig (e.g. to parse CLI options) stays fast.
    if name in _LAZY:
        from fieldtune.training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BudgetTooSmallError",
    "HistoryPoint",
    "StoppedBecause",
    "TrainConfig",
    "TrainConfigError",
    "TrainDevice",
    "TrainPrecision",
    "TrainResult",
    "TrainingDataError",
    "TrainingDivergedError",
    "train",
]
