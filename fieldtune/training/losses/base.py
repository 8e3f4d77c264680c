"""The loss seam: what a loss declares (its name, the data layouts it trains on) and how it is built.

A loss serves two training loops. ``build`` makes the sentence-transformers
loss module that full-model training wraps in MatryoshkaLoss. ``listwise``,
when set, is the same objective written on score matrices for query-side
adaptation (:mod:`fieldtune.training.query_side`), where the documents' vectors
are frozen and only the student's query-candidate cosines carry a gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import Tensor, nn

    from fieldtune.training.config import TrainConfig


class LossInput(str, Enum):
    """A layout of training columns, built by :mod:`fieldtune.training.data` from the pairs.

    ``pairs``: ``anchor``, ``positive`` (in-batch negatives only).
    ``pairs_with_negatives``: ``anchor``, ``positive``, ``negative`` (one mined
    hard negative per row, cycling through a pair's negatives across its copies).
    ``scored_candidates``: ``anchor``, ``positive``, ``negative_1`` ... ``negative_k``
    and ``label`` = the teacher's scores ``[positive, negative_1, ..., negative_k]``
    (from :attr:`Pair.score` and :attr:`Pair.negative_scores`; every pair needs
    them, with the same ``k``). This is the layout sentence-transformers'
    ``MarginMSELoss`` and ``DistillKLDivLoss`` read.
    """

    PAIRS = "pairs"
    PAIRS_WITH_NEGATIVES = "pairs_with_negatives"
    SCORED_CANDIDATES = "scored_candidates"


#: Builds the inner loss (the module MatryoshkaLoss wraps) for a model and a config.
LossBuilder = Callable[["SentenceTransformer", "TrainConfig"], "nn.Module"]


class ListwiseSettings(Protocol):
    """What a listwise loss reads from its run's config (``QuerySideConfig`` has both)."""

    @property
    def teacher_temperature(self) -> float: ...

    @property
    def student_temperature(self) -> float: ...


class ListwiseLoss(Protocol):
    """A score-based loss over K candidates per query (padded to a rectangle).

    ``student``: the student's cosines, ``[B, K]``; ``teacher``: the teacher's
    scores, ``[B, K]``; ``mask``: bool ``[B, K]``, True for real candidates
    (padding is False and must not change the value); ``positive``: bool
    ``[B, K]``, the judged positives when the data is labelled, else None.
    Returns a scalar tensor, differentiable in ``student``.
    """

    def __call__(
        self,
        student: Tensor,
        teacher: Tensor,
        mask: Tensor,
        config: ListwiseSettings,
        *,
        positive: Tensor | None = None,
    ) -> Tensor: ...


@dataclass(frozen=True)
class LossSpec:
    """A registered loss.

    ``inputs`` are the layouts it can train on, preferred first: the data step
    takes the first one the pairs and options can supply (so a loss that
    accepts ``pairs_with_negatives`` and ``pairs`` trains on negatives when
    mining produced them and hard negatives are on, else on plain pairs).
    ``title`` is what a model card prints (the sentence-transformers class).
    ``listwise`` is the loss on score matrices that query-side adaptation
    trains with (None: the loss trains full models only).
    """

    name: str
    title: str
    inputs: tuple[LossInput, ...]
    build: LossBuilder
    listwise: ListwiseLoss | None = None


def st_losses() -> ModuleType:
    """sentence-transformers' losses module (heavy: imported when a loss is built, not before)."""
    try:
        from sentence_transformers.sentence_transformer import losses
    except ImportError:  # sentence-transformers < 5.4 kept losses at the top level
        from sentence_transformers import losses  # type: ignore[no-redef]
    return losses
