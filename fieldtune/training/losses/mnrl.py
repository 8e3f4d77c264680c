"""MultipleNegativesRankingLoss: InfoNCE over in-batch negatives (scale 20), plus a mined negative if any."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fieldtune.training.distributed import world_size
from fieldtune.training.losses.base import LossInput, LossSpec, st_losses

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import nn

    from fieldtune.training.config import TrainConfig


def _build(model: SentenceTransformer, config: TrainConfig) -> nn.Module:
    # under torchrun, every process's batch is a negative for every other's (N x B negatives, not B)
    return st_losses().MultipleNegativesRankingLoss(model, gather_across_devices=world_size() > 1)


MNRL = LossSpec(
    name="mnrl",
    title="MultipleNegativesRankingLoss",
    inputs=(LossInput.PAIRS_WITH_NEGATIVES, LossInput.PAIRS),
    build=_build,
)
