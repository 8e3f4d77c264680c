"""Training options: one validated, frozen dataclass and the string enums it uses.

Every option is checked when the config is built, so a typo fails before a
model is loaded. Options that depend on the model (Matryoshka dimensions,
frozen layers) are checked again against it in :func:`fieldtune.training.train`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any, TypeVar

from fieldtune.models import DEFAULT_MODEL
from fieldtune.training.errors import TrainConfigError
from fieldtune.training.losses import DEFAULT_LOSS, LOSSES

E = TypeVar("E", bound=Enum)


class TrainPrecision(str, Enum):
    """Arithmetic precision of the forward/backward passes.

    ``auto`` picks bf16 autocast on a CPU with native bf16 instructions
    (AVX-512 BF16 or AMX), bf16 on a CUDA device that supports it, else fp16 on
    CUDA and fp32 on CPU. Master weights and the saved model stay float32.
    """

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class TrainDevice(str, Enum):
    """Where to train; ``auto`` is CUDA when available, else the CPU."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class StoppedBecause(str, Enum):
    """Why a training run ended."""

    COMPLETED = "completed"  # every planned epoch ran
    EARLY_STOPPING = "early_stopping"  # the dev loss stopped improving
    BUDGET = "budget"  # the time budget ran out (or shortened the plan)
    MAX_STEPS = "max_steps"  # ``max_steps`` capped the run before the last epoch


def coerce_enum(enum_cls: type[E], value: Any, option: str) -> E:
    """``value`` as a member of ``enum_cls``; the error lists the valid members."""
    if isinstance(value, enum_cls):
        return value
    try:
        return enum_cls(str(value).strip().lower())
    except ValueError:
        valid = ", ".join(member.value for member in enum_cls)
        raise TrainConfigError(f"{option} must be one of {valid}; got {value!r}") from None


def coerce_loss(value: Any) -> str:
    """``value`` as the name of a registered loss; the error lists the names and close matches."""
    name = str(value).strip().lower()
    if name in LOSSES:
        return name
    close = LOSSES.suggest(name)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise TrainConfigError(f"loss must be one of {', '.join(LOSSES)}; got {value!r}{hint}")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise TrainConfigError(message)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as JSON-ready values (enums as strings, tuples as lists)."""
    data = asdict(config)
    for key, value in data.items():
        if isinstance(value, Enum):
            data[key] = value.value
        elif isinstance(value, tuple):
            data[key] = list(value)
    return data


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that shapes a training run (keyword-only; validated on construction).

    Prompts: ``None`` means "the base model's own saved query/document prompt
    if it has one, else ``"query: "`` / ``"passage: "``" (asymmetric E5-style
    prefixes that let one encoder treat short queries and passages
    differently); ``""`` disables a prompt. The prompts are applied to the
    anchor / positive / negative columns during training and saved in the model
    under the names ``"query"`` and ``"document"``. (On arXiv-math titles ->
    abstracts, MiniLM with these prompts lost 0.005 MRR@10 untrained but
    recovered within 10 steps and ended level with or above the no-prompt run.)

    ``loss`` names a registered loss (:data:`fieldtune.training.losses.LOSSES`:
    ``mnrl``, MultipleNegativesRankingLoss, or ``cached_mnrl``, its
    gradient-cached variant that computes a large batch in mini-batches of
    ``mini_batch_size``); it is trained inside MatryoshkaLoss.

    ``budget_minutes`` bounds the whole :func:`train` call (loading included):
    one step is timed first (too little time for one step raises
    ``BudgetTooSmallError``), the step count is fitted to the budget so the
    learning-rate schedule still decays, and a callback stops cleanly, with a
    final evaluation and checkpoint, if the estimate was optimistic.

    ``eval_every_steps=None`` evaluates the dev loss about every 10% of an
    epoch (at least every 10 steps); checkpoints are saved at the same steps.
    ``early_stopping_patience=0`` disables early stopping.
    ``max_seq_length`` bounds the tokens seen in training (a CPU speed knob);
    the saved model keeps the base model's own limit for inference.
    ``num_threads=None`` leaves torch's thread count alone (all cores).
    ``keep_checkpoints=False`` deletes ``checkpoints/`` once the final model is
    written; keep them to continue a finished run with a larger ``max_steps``.
    """

    base: str = DEFAULT_MODEL
    loss: str = DEFAULT_LOSS
    mini_batch_size: int = 32
    matryoshka_dims: tuple[int, ...] | None = None
    matryoshka_weights: tuple[float, ...] | None = None
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    epochs: float = 1.0
    max_seq_length: int = 128
    query_prompt: str | None = None
    document_prompt: str | None = None
    budget_minutes: float | None = None
    eval_every_steps: int | None = None
    early_stopping_patience: int = 3
    seed: int = 42
    precision: TrainPrecision = TrainPrecision.AUTO
    device: TrainDevice = TrainDevice.AUTO
    use_hard_negatives: bool = True
    freeze_layers: int = 0
    max_steps: int | None = None
    num_threads: int | None = None
    keep_checkpoints: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # the dataclass is frozen; normalise once, here
        set_(self, "loss", coerce_loss(self.loss))
        set_(self, "precision", coerce_enum(TrainPrecision, self.precision, "precision"))
        set_(self, "device", coerce_enum(TrainDevice, self.device, "device"))
        _check(isinstance(self.base, str) and bool(self.base.strip()), "base must name a model")
        for name in ("batch_size", "mini_batch_size", "max_seq_length"):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and value >= 1,
                f"{name} must be a positive integer; got {value!r}",
            )
        _check(
            self.batch_size >= 2,
            f"batch_size must be at least 2 (in-batch negatives); got {self.batch_size}",
        )
        _check(
            _finite(self.learning_rate) and 0 < self.learning_rate < 1,
            f"learning_rate must be in (0, 1); got {self.learning_rate!r}",
        )
        _check(
            _finite(self.warmup_ratio) and 0 <= self.warmup_ratio < 1,
            f"warmup_ratio must be in [0, 1); got {self.warmup_ratio!r}",
        )
        _check(
            _finite(self.epochs) and self.epochs > 0,
            f"epochs must be positive; got {self.epochs!r}",
        )
        if self.budget_minutes is not None:
            _check(
                _finite(self.budget_minutes) and self.budget_minutes > 0,
                f"budget_minutes must be positive; got {self.budget_minutes!r}",
            )
        for name in ("eval_every_steps", "max_steps", "num_threads"):
            value = getattr(self, name)
            if value is not None:
                _check(
                    isinstance(value, int) and value >= 1,
                    f"{name} must be a positive integer or None; got {value!r}",
                )
        _check(
            isinstance(self.early_stopping_patience, int) and self.early_stopping_patience >= 0,
            "early_stopping_patience must be an integer >= 0 (0 disables it); "
            f"got {self.early_stopping_patience!r}",
        )
        _check(
            isinstance(self.freeze_layers, int) and self.freeze_layers >= 0,
            f"freeze_layers must be an integer >= 0; got {self.freeze_layers!r}",
        )
        _check(isinstance(self.seed, int), f"seed must be an integer; got {self.seed!r}")
        for name in ("query_prompt", "document_prompt"):
            value = getattr(self, name)
            _check(
                value is None or isinstance(value, str),
                f'{name} must be a string ("" disables it) or None; got {value!r}',
            )
        self._normalise_matryoshka(set_)

    def _normalise_matryoshka(self, set_: Any) -> None:
        dims, weights = self.matryoshka_dims, self.matryoshka_weights
        if dims is not None:
            dims = tuple(dims)
            _check(
                len(dims) > 0,
                "matryoshka_dims must not be empty (None derives them from the model)",
            )
            _check(
                all(isinstance(d, int) and d >= 1 for d in dims),
                f"matryoshka_dims must be positive integers; got {list(dims)}",
            )
            _check(len(set(dims)) == len(dims), f"matryoshka_dims has duplicates: {list(dims)}")
            set_(self, "matryoshka_dims", dims)
        if weights is not None:
            weights = tuple(float(w) for w in weights)
            _check(
                all(_finite(w) and w > 0 for w in weights),
                f"matryoshka_weights must be positive numbers; got {list(weights)}",
            )
            if dims is not None:
                _check(
                    len(weights) == len(dims),
                    f"matryoshka_weights has {len(weights)} values "
                    f"but matryoshka_dims has {len(dims)}",
                )
            set_(self, "matryoshka_weights", weights)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (enums as strings, tuples as lists)."""
        return config_to_dict(self)

    #: Options that may change between an interrupted run and its resumption.
    RESUMABLE_CHANGES = frozenset(
        {
            "budget_minutes",
            "max_steps",
            "precision",
            "device",
            "early_stopping_patience",
            "num_threads",
            "keep_checkpoints",
        }
    )

    def run_identity(self) -> dict[str, Any]:
        """The options a checkpoint must share with this config to be resumed."""
        data = self.to_dict()
        return {f.name: data[f.name] for f in fields(self) if f.name not in self.RESUMABLE_CHANGES}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
