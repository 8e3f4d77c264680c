"""Training losses: a registry of :class:`LossSpec`, each declaring the columns it trains on.

The loss named by ``TrainConfig.loss`` is built by its spec and wrapped in
``MatryoshkaLoss`` (:func:`fieldtune.training.setup.build_loss`); the data step
(:func:`fieldtune.training.data.prepare_splits`) builds only the columns of the
first layout in ``spec.inputs`` that the pairs can supply. Registered today:

- ``mnrl`` (:mod:`.mnrl`): MultipleNegativesRankingLoss, the default;
- ``cached_mnrl`` (:mod:`.cached_mnrl`): its gradient-cached variant for large batches;
- ``kl`` (:mod:`.kl`): listwise KL distillation of a teacher's candidate scores;
- ``margin_mse`` (:mod:`.margin_mse`): MarginMSE against the teacher's top candidate;
- ``labelled`` (:mod:`.labelled`): judged positives against teacher-filtered negatives.

The last three have a ``listwise`` form (score matrices, see
:class:`~fieldtune.training.losses.base.ListwiseLoss`) that query-side
adaptation (:mod:`fieldtune.training.query_side`) trains with.

Adding a loss
-------------
One new module and one registry line. A score-based loss that distils a
teacher looks like ``fieldtune/training/losses/margin_mse.py``::

    def _build(model, config):
        return st_losses().MarginMSELoss(model)

    MARGIN_MSE = LossSpec(name="margin_mse", title="MarginMSELoss",
                          inputs=(LossInput.SCORED_CANDIDATES,), build=_build,
                          listwise=listwise_margin_mse)

plus ``LOSSES.register(MARGIN_MSE.name, MARGIN_MSE)`` below. The data step then
builds ``anchor, positive, negative_1..k, label`` from the pairs' teacher
scores (``Pair.score``, ``Pair.negative_scores``) and refuses pairs without
them; MarginMSELoss turns the label into margins itself. A listwise KL loss is
:mod:`.kl`, with ``DistillKLDivLoss``. ``--loss margin_mse`` is then
accepted by :class:`~fieldtune.training.TrainConfig`, and the model record's
``config["loss"]`` names it.
"""

from __future__ import annotations

from fieldtune.registry import Registry
from fieldtune.training.losses.base import (
    ListwiseLoss,
    ListwiseSettings,
    LossBuilder,
    LossInput,
    LossSpec,
    st_losses,
)
from fieldtune.training.losses.cached_mnrl import CACHED_MNRL
from fieldtune.training.losses.kl import KL
from fieldtune.training.losses.labelled import LABELLED
from fieldtune.training.losses.margin_mse import MARGIN_MSE
from fieldtune.training.losses.mnrl import MNRL

#: The default loss's name.
DEFAULT_LOSS = MNRL.name

LOSSES: Registry[LossSpec] = Registry("loss")
LOSSES.register(MNRL.name, MNRL)
LOSSES.register(CACHED_MNRL.name, CACHED_MNRL)
LOSSES.register(KL.name, KL)
LOSSES.register(MARGIN_MSE.name, MARGIN_MSE)
LOSSES.register(LABELLED.name, LABELLED)

__all__ = [
    "DEFAULT_LOSS",
    "LOSSES",
    "ListwiseLoss",
    "ListwiseSettings",
    "LossBuilder",
    "LossInput",
    "LossSpec",
    "st_losses",
]
