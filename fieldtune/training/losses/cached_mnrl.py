"""CachedMultipleNegativesRankingLoss: MNRL over a large batch, computed in mini-batches (GradCache).

The same loss as :mod:`.mnrl` with the batch processed ``mini_batch_size``
rows at a time, so a big batch (more in-batch negatives) fits in memory at
about the same cost per pair.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fieldtune.training.distributed import world_size
from fieldtune.training.losses.base import LossInput, LossSpec, st_losses

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import nn

    from fieldtune.training.config import TrainConfig


def _build(model: SentenceTransformer, config: TrainConfig) -> nn.Module:
    return st_losses().CachedMultipleNegativesRankingLoss(
        model, mini_batch_size=config.mini_batch_size, gather_across_devices=world_size() > 1
    )


CACHED_MNRL = LossSpec(
    name="cached_mnrl",
    title="CachedMultipleNegativesRankingLoss",
    inputs=(LossInput.PAIRS_WITH_NEGATIVES, LossInput.PAIRS),
    build=_build,
)
