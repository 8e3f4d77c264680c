"""MarginMSE: the student's score margins between a query's best candidate and each other one match the teacher's.

The positive of each query is the teacher's top-scored real candidate; for
every other real candidate ``j`` the loss is
``((s_pos - s_j) - (t_pos - t_j))²``, averaged over all (query, j) pairs.
Margins, not raw scores, are matched, so the teacher's scale only needs to
be comparable to cosine differences (min-max fused scores are). Full-model
training builds sentence-transformers' ``MarginMSELoss``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fieldtune.training.losses.base import ListwiseSettings, LossInput, LossSpec, st_losses

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import Tensor, nn

    from fieldtune.training.config import TrainConfig


def listwise_margin_mse(
    student: Tensor, teacher: Tensor, mask: Tensor, config: ListwiseSettings, *, positive: Tensor | None = None
) -> Tensor:
    """Mean squared difference of (top - other) margins over every real non-top candidate."""
    import torch

    top = teacher.masked_fill(~mask, torch.finfo(teacher.dtype).min).argmax(dim=-1, keepdim=True)
    student_margin = student.gather(-1, top) - student
    teacher_margin = teacher.gather(-1, top) - teacher
    others = mask.clone()
    others.scatter_(-1, top, False)
    squared = (student_margin - teacher_margin).pow(2).masked_fill(~others, 0.0)
    return squared.sum() / others.sum().clamp(min=1)


def _build(model: SentenceTransformer, config: TrainConfig) -> nn.Module:
    return st_losses().MarginMSELoss(model)


MARGIN_MSE = LossSpec(
    name="margin_mse",
    title="MarginMSELoss",
    inputs=(LossInput.SCORED_CANDIDATES,),
    build=_build,
    listwise=listwise_margin_mse,
)
