"""The train/dev/test split: decided per group by a seeded hash, so it never depends on order or count."""

from __future__ import annotations

from enum import Enum

from fieldtune.hashing import seeded_fraction
from fieldtune.pairs.config import PairConfig


class Split(str, Enum):
    TRAIN = "train"
    DEV = "dev"
    TEST = "test"


def assign_split(group: str, config: PairConfig) -> Split:
    """A deterministic split per group, independent of the order or number of groups."""
    value = seeded_fraction(config.seed, group)
    if value < config.test_fraction:
        return Split.TEST
    if value < config.test_fraction + config.dev_fraction:
        return Split.DEV
    return Split.TRAIN
