"""Errors raised by the training stage; the CLI prints them without a traceback."""

from __future__ import annotations

from fieldtune.errors import FieldtuneError


class TrainConfigError(FieldtuneError, ValueError):
    """A training option with an invalid value; the message names the option and the valid range."""


class TrainingDataError(FieldtuneError):
    """Pairs that cannot be trained on (unknown chunk ids, too few pairs, bad weights)."""


class BudgetTooSmallError(FieldtuneError):
    """The time budget cannot fit even one optimisation step plus one evaluation and save.

    ``step_seconds`` is the measured time of one step and ``minimum_minutes``
    a budget that would fit at least that much.
    """

    def __init__(self, message: str, *, step_seconds: float, minimum_minutes: float) -> None:
        super().__init__(message)
        self.step_seconds = step_seconds
        self.minimum_minutes = minimum_minutes


class TrainingDivergedError(FieldtuneError):
    """The training loss became NaN or infinite."""
