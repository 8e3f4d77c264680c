"""One configuration for a build: the stage configurations nested, the seed set once.

Every stage reads its parameters from :class:`BuildConfig`; the seed lives
here and is written into each nested configuration that draws random numbers
(pairs, mining, training) in ``__post_init__``, the one place it is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from fieldtune.chunking import ChunkingConfig
from fieldtune.concepts import EXTRACTORS, ConceptConfig
from fieldtune.encoding import Precision
from fieldtune.errors import FieldtuneError
from fieldtune.gate import GateConfig
from fieldtune.ingest import OnError
from fieldtune.llm.client import LLMEndpoint
from fieldtune.mining import MiningConfig
from fieldtune.models import DEFAULT_MODEL
from fieldtune.pairs import PairConfig
from fieldtune.pseudo_queries import PSEUDO_QUERY_SOURCES, PseudoQueryConfig
from fieldtune.teachers.base import TeacherOptions
from fieldtune.training import TrainConfig
from fieldtune.training.query_side_config import QuerySideConfig
from fieldtune.training_mode import TrainingMode

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
    #: the user's unlabelled queries (a search log, questions): .txt, .jsonl, .csv or a BEIR directory
    queries: str | None = None
    #: the user's labelled pairs: a BEIR directory with qrels/train.tsv, or JSONL {query, positive(s), negative(s)}
    train_data: str | None = None
    mode: TrainingMode = TrainingMode.AUTO
    #: the registered teacher that scores each training query's candidates, and how many it keeps per source
    teacher: str = "hybrid"
    teacher_k: int = 50
    teacher_options: TeacherOptions = TeacherOptions()
    #: share of the user's queries held out for the quality gate
    dev_fraction: float = 0.2
    #: QuerySideConfig fields other than base, budget and seed (e.g. epochs, loss, batch_size)
    query_side_overrides: dict[str, Any] = field(default_factory=dict)
    #: pseudo-query sources (fieldtune.pseudo_queries) for a query-side build without the user's queries
    pseudo_queries: tuple[str, ...] = ()
    #: at most this many pseudo-queries in all (each source's share spread over the documents)
    pseudo_query_cap: int = 3000
    #: an OpenAI-compatible LLM (``--llm-url``/``--llm-model``) for the llm concept extractor and pseudo-query source;
    #: written into ``concepts.llm`` like the seed
    llm: LLMEndpoint | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "mode", TrainingMode(self.mode))
        except ValueError:
            choices = ", ".join(m.value for m in TrainingMode)
            raise BuildConfigError(f"mode must be one of {choices}; got {self.mode!r}") from None
        for name in ("pairs", "mining"):
            nested = getattr(self, name)
            if nested.seed != self.seed:
                object.__setattr__(self, name, replace(nested, seed=self.seed))
        if self.llm is not None and self.concepts.llm != self.llm:
            object.__setattr__(self, "concepts", replace(self.concepts, llm=self.llm))
        blocked = {"base", "budget_minutes", "seed"} & (set(self.train_overrides) | set(self.query_side_overrides))
        if blocked:
            raise BuildConfigError(f"set {', '.join(sorted(blocked))} on BuildConfig itself, not in train_overrides")
        if not 0 < self.dev_fraction < 1:
            raise BuildConfigError(f"dev_fraction must be in (0, 1); got {self.dev_fraction}")
        if self.teacher_k < 1:
            raise BuildConfigError(f"teacher_k must be at least 1; got {self.teacher_k}")
        self._check_pseudo_queries()
        if self.training_mode() is not TrainingMode.FULL and not self.has_queries():
            raise BuildConfigError(
                f"mode {self.mode.value!r} adapts the query encoder and needs the user's queries: "
                "give --queries FILE or --train-data DIR|FILE, or --pseudo-queries SOURCES (or use --mode full)"
            )
        if self.min_documents < 1:
            raise BuildConfigError(f"min_documents must be at least 1; got {self.min_documents}")
        # Checked before any stage runs: a bad option must not cost an ingest first.
        if self.concepts.extractor not in EXTRACTORS:
            raise BuildConfigError(EXTRACTORS.unknown_message(self.concepts.extractor))
        for nested in (self.chunking, self.concepts):
            try:
                nested.validate()
            except ValueError as error:
                raise BuildConfigError(str(error)) from None

    def _check_pseudo_queries(self) -> None:
        object.__setattr__(self, "pseudo_queries", tuple(self.pseudo_queries))
        for name in self.pseudo_queries:
            if name not in PSEUDO_QUERY_SOURCES:
                raise BuildConfigError(PSEUDO_QUERY_SOURCES.unknown_message(name))
        if self.pseudo_query_cap < 1:
            raise BuildConfigError(f"pseudo_query_cap must be at least 1; got {self.pseudo_query_cap}")
        if "llm" in self.pseudo_queries and self.llm is None:
            raise BuildConfigError("the llm pseudo-query source needs an LLM endpoint: give --llm-url URL and "
                                   "--llm-model NAME (an OpenAI-compatible server, e.g. llama.cpp's)")

    def has_supervision(self) -> bool:
        """Whether the user gave queries or labels; pseudo-queries are not (their dev share is pseudo too)."""
        return bool(self.queries or self.train_data)

    def has_queries(self) -> bool:
        """Whether a query-side build has training queries: the user's, or pseudo-queries from the corpus."""
        return self.has_supervision() or bool(self.pseudo_queries)

    def pseudo_query_config(self) -> PseudoQueryConfig:
        return PseudoQueryConfig(sources=self.pseudo_queries, cap=self.pseudo_query_cap, seed=self.seed, llm=self.llm)

    def training_mode(self) -> TrainingMode:
        if self.mode is TrainingMode.AUTO:
            return TrainingMode.QUERY if self.has_queries() else TrainingMode.FULL
        return self.mode

    def trains_full_model(self) -> bool:
        return self.training_mode() in (TrainingMode.FULL, TrainingMode.BOTH)

    def adapts_query_side(self) -> bool:
        return self.training_mode() in (TrainingMode.QUERY, TrainingMode.BOTH)

    def query_side_config(self) -> QuerySideConfig:
        """The adapt stage's QuerySideConfig: listwise KL on the teacher, or the labelled loss when labels are given."""
        overrides = {"loss": "labelled" if self.train_data else "kl", **self.query_side_overrides}
        return QuerySideConfig(base=self.base, budget_minutes=self.budget_minutes, seed=self.seed, **overrides)

    def encode_precision(self) -> Precision:
        """The precision the build's encoders are given (``auto`` lets each settle it for its job's size)."""
        return self.precision or Precision.AUTO

    def train_config(self) -> TrainConfig:
        """The training stage's TrainConfig."""
        return TrainConfig(base=self.base, budget_minutes=self.budget_minutes, seed=self.seed, **self.train_overrides)

