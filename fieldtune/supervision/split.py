"""Hold out the user's dev queries: the ones the gate judges candidate models on, never trained on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from fieldtune.hashing import seeded_fraction
from fieldtune.supervision.common import normalise

#: Fewer dev queries than this make the gate's paired confidence interval too wide to decide anything.
MIN_DEV = 10


class _HasText(Protocol):
    @property
    def text(self) -> str: ...


Q = TypeVar("Q", bound=_HasText)


def split_dev(
    items: Sequence[Q], fraction: float = 0.2, *, seed: int, min_dev: int = MIN_DEV
) -> tuple[list[Q], list[Q]]:
    """``(train, dev)``, each in input order; ``dev`` holds about ``fraction`` of ``items``.

    Each query's side is decided by a seeded hash of its normalised text
    (:func:`fieldtune.hashing.seeded_fraction`), not by its position: adding
    queries to the file, or reordering it, moves no other query between
    train and dev, so a dev score stays comparable across builds. When fewer
    than ``min_dev`` queries fall in dev, the ones with the lowest draws are
    added up to ``min_dev``, but never more than half of ``items`` (training
    keeps the majority); only then can an added query move another.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the dev fraction must be in [0, 1), got {fraction}")
    if min_dev < 0:
        raise ValueError(f"min_dev must be at least 0, got {min_dev}")
    draws = [seeded_fraction(seed, normalise(item.text)) for item in items]
    dev_rows = {row for row, draw in enumerate(draws) if draw < fraction}
    wanted = min(min_dev, len(items) // 2)
    if len(dev_rows) < wanted:
        by_draw = sorted(range(len(items)), key=lambda row: (draws[row], row))
        dev_rows.update(by_draw[:wanted])
    train = [item for row, item in enumerate(items) if row not in dev_rows]
    dev = [item for row, item in enumerate(items) if row in dev_rows]
    return train, dev
