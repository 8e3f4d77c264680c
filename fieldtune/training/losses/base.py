"""The loss seam: what a loss declares (its name, the data layouts it trains on) and how it is built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import nn

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


@dataclass(frozen=True)
class LossSpec:
    """A registered loss.

    ``inputs`` are the layouts it can train on, preferred first: the data step
    takes the first one the pairs and options can supply (so a loss that
    accepts ``pairs_with_negatives`` and ``pairs`` trains on negatives when
    mining produced them and hard negatives are on, else on plain pairs).
    ``title`` is what a model card prints (the sentence-transformers class).
    """

    name: str
    title: str
    inputs: tuple[LossInput, ...]
    build: LossBuilder


def st_losses() -> ModuleType:
    """sentence-transformers' losses module (heavy: imported when a loss is built, not before)."""
    try:
        from sentence_transformers.sentence_transformer import losses
    except ImportError:  # sentence-transformers < 5.4 kept losses at the top level
        from sentence_transformers import losses  # type: ignore[no-redef]
    return losses
