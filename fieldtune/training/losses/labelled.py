"""Labelled data: cross-entropy towards the judged positives, with teacher-filtered negatives.

For each judged positive ``p`` of a query the loss is
``-log(exp(s_p/τs) / (exp(s_p/τs) + Σ_n exp(s_n/τs)))`` over the kept
negatives ``n`` (the candidates that are not judged positive), averaged over
the positives, then over the queries that have one. A candidate the teacher
scores above the query's lowest-scored positive is dropped from the negatives:
judgements are incomplete, and a document the teacher ranks among the relevant
ones is more likely an unjudged positive than a negative (the false-negative
guard of mined hard negatives, applied to the candidates). Full-model training
builds MultipleNegativesRankingLoss on the labelled pairs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fieldtune.training.losses.base import ListwiseSettings, LossSpec
from fieldtune.training.losses.mnrl import MNRL

if TYPE_CHECKING:
    from torch import Tensor


class MissingPositivesError(ValueError):
    """The labelled loss was given no judged positives."""


def kept_negatives(teacher: Tensor, mask: Tensor, positive: Tensor) -> Tensor:
    """Real, non-positive candidates the teacher scores at most as high as the lowest positive."""
    import torch

    lowest = teacher.masked_fill(~positive, torch.finfo(teacher.dtype).max).min(dim=-1, keepdim=True).values
    return mask & ~positive & (teacher <= lowest)


def listwise_labelled(
    student: Tensor, teacher: Tensor, mask: Tensor, config: ListwiseSettings, *, positive: Tensor | None = None
) -> Tensor:
    """Mean over queries with a positive of the mean over positives of the InfoNCE term against kept negatives."""
    import torch

    if positive is None:
        raise MissingPositivesError("the labelled loss needs judged positives (ScoredQuery.positive_ids)")
    positive = positive & mask
    logits = student / config.student_temperature
    negatives = kept_negatives(teacher, mask, positive)
    # log Σ_n exp(l_n) per row, then log(exp(l_p) + that) per positive. The fill is finite, not -inf:
    # a row without kept negatives would otherwise give NaN gradients through logsumexp.
    fill = torch.finfo(logits.dtype).min
    negative_lse = torch.logsumexp(logits.masked_fill(~negatives, fill), dim=-1, keepdim=True)
    denominator = torch.logaddexp(logits, negative_lse)
    terms = (denominator - logits).masked_fill(~positive, 0.0)
    counts = positive.sum(dim=-1)
    has_positive = counts > 0
    if not bool(has_positive.any()):
        return student.sum() * 0.0
    per_query = terms.sum(dim=-1)[has_positive] / counts[has_positive]
    return per_query.mean()


LABELLED = LossSpec(
    name="labelled",
    title=MNRL.title,
    inputs=MNRL.inputs,
    build=MNRL.build,
    listwise=listwise_labelled,
)
