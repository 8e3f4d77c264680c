"""Listwise KL distillation: the student's softmax over a query's candidates follows the teacher's.

``KL(softmax(teacher / τt) || softmax(student / τs))`` per query, averaged
over the batch. The student's scores are cosines, the teacher's any scores
(min-max fused hybrid scores in the probe of issue 14), so each side has its
own temperature: 0.1 spreads [0, 1] teacher scores into a peaked but not
one-hot target, 0.05 lets cosines that differ by a few hundredths matter.
Full-model training builds sentence-transformers' ``DistillKLDivLoss`` with
the same temperatures, on cosine similarity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fieldtune.training.losses.base import ListwiseSettings, LossInput, LossSpec, st_losses

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import Tensor, nn

    from fieldtune.training.config import TrainConfig

#: Temperatures of the full-model variant (TrainConfig has no temperature options).
TEACHER_TEMPERATURE = 0.1
STUDENT_TEMPERATURE = 0.05


def masked_log_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """log-softmax over the real candidates of each row; padded entries come out as 0, not -inf."""
    import torch

    filled = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    return torch.log_softmax(filled, dim=-1).masked_fill(~mask, 0.0)


def listwise_kl(
    student: Tensor, teacher: Tensor, mask: Tensor, config: ListwiseSettings, *, positive: Tensor | None = None
) -> Tensor:
    """Mean over queries of KL(teacher distribution || student distribution) on the real candidates."""
    log_p = masked_log_softmax(teacher / config.teacher_temperature, mask)
    log_q = masked_log_softmax(student / config.student_temperature, mask)
    per_query = (log_p.exp() * (log_p - log_q)).masked_fill(~mask, 0.0).sum(dim=-1)
    return per_query.mean()


def _build(model: SentenceTransformer, config: TrainConfig) -> nn.Module:
    from sentence_transformers.util import pairwise_cos_sim

    return st_losses().DistillKLDivLoss(
        model,
        similarity_fct=pairwise_cos_sim,
        student_temperature=STUDENT_TEMPERATURE,
        teacher_temperature=TEACHER_TEMPERATURE,
    )


KL = LossSpec(
    name="kl",
    title="DistillKLDivLoss",
    inputs=(LossInput.SCORED_CANDIDATES,),
    build=_build,
    listwise=listwise_kl,
)
