"""One configuration for a build: the stage configurations nested, the seed set once.

Every stage reads its parameters from :class:`BuildConfig`; the seed lives
here and is written into each nested configuration that draws random numbers
(pairs, mining, training) in ``__post_init__``, the one place it is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from fieldtune.chunking import ChunkingConfig
from fieldtune.concepts import ConceptConfig
from fieldtune.errors import FieldtuneError
from fieldtune.encoding import Precision, auto_precision
from fieldtune.gate import GateConfig
from fieldtune.ingest import OnError
from fieldtune.mining import MiningConfig
from fieldtune.models import DEFAULT_MODEL
from fieldtune.pairs import PairConfig
from fieldtune.training import TrainConfig

#: a corpus smaller than this cannot give a train/dev/test split of concepts
MIN_DOCUMENTS = 20
#: fewer training pairs than this teach nothing and make the dev loss noise
MIN_TRAIN_PAIRS = 64


class BuildConfigError(FieldtuneError, ValueError):
    """An option out of range; raised before any stage runs."""


@dataclass(frozen=True)
class BuildConfig:
    """Everything that shapes a build's artifacts (and so the manifest's stage keys)."""

    base: str = DEFAULT_MODEL
    budget_minutes: float | None = 15.0
    seed: int = 0
    #: external BEIR sets evaluated (never trained on) besides the derived set
    eval_data: tuple[str, ...] = ()
    on_error: OnError = OnError.STOP
    #: fewer documents stop the build before anything is written (``fieldtune ingest`` alone accepts any number)
    min_documents: int = MIN_DOCUMENTS
    #: encoding for mining, gate and evaluation; None = bf16 where the hardware computes it natively
    precision: Precision | None = None
    chunking: ChunkingConfig = ChunkingConfig()
    concepts: ConceptConfig = ConceptConfig()
    pairs: PairConfig = PairConfig()
    mining: MiningConfig = MiningConfig()
    gate: GateConfig = GateConfig()
    #: append the corpus-fitted principal rotation (fieldtune.rotation) so truncated dimensions keep more
    rotate: bool = True
    #: TrainConfig fields other than base, budget and seed (e.g. batch_size, max_seq_length, loss)
    train_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("pairs", "mining"):
            nested = getattr(self, name)
            if nested.seed != self.seed:
                object.__setattr__(self, name, replace(nested, seed=self.seed))
        blocked = {"base", "budget_minutes", "seed"} & set(self.train_overrides)
        if blocked:
            raise BuildConfigError(f"set {', '.join(sorted(blocked))} on BuildConfig itself, not in train_overrides")
        if self.min_documents < 1:
            raise BuildConfigError(f"min_documents must be at least 1; got {self.min_documents}")
        # Checked before any stage runs: a bad option must not cost an ingest first.
        for nested in (self.chunking, self.concepts):
            try:
                nested.validate()
            except ValueError as error:
                raise BuildConfigError(str(error)) from None

    def encode_precision(self) -> Precision:
        return self.precision or auto_precision()

    def train_config(self) -> TrainConfig:
        """The training stage's TrainConfig."""
        return TrainConfig(base=self.base, budget_minutes=self.budget_minutes, seed=self.seed, **self.train_overrides)

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
