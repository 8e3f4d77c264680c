"""The options of the pairs stage: how many pairs of each kind, and how groups are split."""

from __future__ import annotations

from dataclasses import dataclass

from fieldtune.types import PairKind


@dataclass(frozen=True)
class PairConfig:
    """Caps per kind, the kinds to generate, and the dev/test fractions of the split by group.

    ``kinds`` selects pair kinds, not generators: a generator runs when it can
    emit at least one selected kind, and only pairs of selected kinds are kept.
    """

    max_per_concept: int = 8
    max_edge_pairs_per_concept: int = 4
    max_title_pairs_per_doc: int = 2
    max_sentence_pairs_per_doc: int = 2
    min_sentence_words: int = 6
    min_rest_words: int = 20
    kinds: tuple[PairKind, ...] = tuple(PairKind)
    dev_fraction: float = 0.1
    test_fraction: float = 0.15
    seed: int = 0

    def validate(self) -> None:
        fractions_ok = 0 <= self.dev_fraction < 1 and 0 < self.test_fraction < 1
        if not fractions_ok or self.dev_fraction + self.test_fraction >= 0.9:
            raise ValueError("dev_fraction and test_fraction must be in [0, 1) and leave most concepts for training")
        if self.max_per_concept < 1:
            raise ValueError("max_per_concept must be at least 1")
