"""Turning pairs that reference chunks by id into the text columns the trainer reads.

Columns are ``anchor`` and ``positive``, plus ``negative`` when hard
negatives are used. Pair weights are honoured by deterministic resampling
(see :func:`copies_for_weight`), because the in-batch-negatives loss has no
per-example weight.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fieldtune.hashing import texts_sha256, unit_hash
from fieldtune.training.errors import TrainingDataError
from fieldtune.types import Pair

logger = logging.getLogger("fieldtune.training")

ANCHOR, POSITIVE, NEGATIVE = "anchor", "positive", "negative"


@dataclass(frozen=True)
class Columns:
    """Parallel text columns for one split (``negative`` is empty when unused)."""

    anchor: list[str]
    positive: list[str]
    negative: list[str]

    def __len__(self) -> int:
        return len(self.anchor)

    def as_dict(self) -> dict[str, list[str]]:
        data = {ANCHOR: self.anchor, POSITIVE: self.positive}
        if self.negative:
            data[NEGATIVE] = self.negative
        return data

    def digest(self) -> str:
        """Content hash, so a checkpoint is only resumed on the same data."""
        return texts_sha256(text for name, values in self.as_dict().items() for text in (name, *values))


def copies_for_weight(weight: float, key: tuple[object, ...]) -> int:
    """How many times a pair of this weight appears in the training set.

    ``floor(weight)`` copies, plus one more with probability ``frac(weight)``
    decided by a hash of ``key`` (so a rebuild gives the same set). Weight 1
    keeps a pair once, 0.5 keeps about half of such pairs, 2 doubles a pair, 0
    drops it. The expected number of copies equals the weight.
    """
    whole = math.floor(weight)
    return whole + (1 if unit_hash(*key) < weight - whole else 0)


def _check_pair(pair: Pair, index: int, split: str, chunk_texts: Mapping[str, str]) -> None:
    where = f"{split} pair {index} (anchor {pair.anchor[:60]!r})"
    if not pair.anchor or not pair.anchor.strip():
        raise TrainingDataError(f"{where}: empty anchor text")
    if pair.positive_id not in chunk_texts:
        raise TrainingDataError(
            f"{where}: positive chunk {pair.positive_id!r} is not among the "
            f"{len(chunk_texts)} chunk texts given; "
            "the pairs and chunks come from different builds? Rebuild the pairs stage."
        )
    missing = [n for n in pair.negative_ids if n not in chunk_texts]
    if missing:
        raise TrainingDataError(
            f"{where}: negative chunk(s) {missing[:3]} are not among the chunk texts; "
            "rebuild the mining stage."
        )
    if not (
        isinstance(pair.weight, (int, float)) and math.isfinite(pair.weight) and pair.weight >= 0
    ):
        raise TrainingDataError(
            f"{where}: weight must be a finite number >= 0; got {pair.weight!r}"
        )


def _fallback_negative(
    pair: Pair, copy: int, seed: int, chunk_ids: Sequence[str], chunk_texts: Mapping[str, str]
) -> str:
    """A pseudo-random chunk other than the positive, for pairs without mined negatives."""
    start = int(unit_hash(seed, "negative", pair.anchor, pair.positive_id, copy) * len(chunk_ids))
    positive = chunk_texts[pair.positive_id]
    for offset in range(len(chunk_ids)):
        candidate = chunk_ids[(start + offset) % len(chunk_ids)]
        if chunk_texts[candidate] != positive:
            return candidate
    return pair.positive_id  # a single-chunk corpus: caught by the pair-count checks


def build_columns(
    pairs: Sequence[Pair],
    chunk_texts: Mapping[str, str],
    *,
    split: str,
    seed: int,
    with_negatives: bool,
    apply_weights: bool,
) -> Columns:
    """Validate ``pairs`` and expand them into text columns.

    With ``apply_weights`` each pair is repeated or dropped by
    :func:`copies_for_weight`; the dev split is not resampled, so its loss
    stays comparable across runs. With ``with_negatives`` copy ``k`` of a pair
    uses its ``k``-th mined negative (cycling; mined negatives whose text is
    the positive's are skipped), and a pair without mined negatives gets a
    pseudo-random other chunk (an easy negative, which only adds one more
    candidate to the in-batch pool).
    """
    chunk_ids = sorted(chunk_texts) if with_negatives else []
    anchors: list[str] = []
    positives: list[str] = []
    negatives: list[str] = []
    for index, pair in enumerate(pairs):
        _check_pair(pair, index, split, chunk_texts)
        copies = (
            copies_for_weight(pair.weight, (seed, split, index, pair.anchor, pair.positive_id))
            if apply_weights
            else 1
        )
        positive = chunk_texts[pair.positive_id]
        # A "negative" with the positive's text would teach the model to push the answer away.
        mined = [n for n in pair.negative_ids if chunk_texts[n] != positive]
        for copy in range(copies):
            anchors.append(pair.anchor)
            positives.append(positive)
            if with_negatives:
                negative_id = (
                    mined[copy % len(mined)]
                    if mined
                    else _fallback_negative(pair, copy, seed, chunk_ids, chunk_texts)
                )
                negatives.append(chunk_texts[negative_id])
    return Columns(anchors, positives, negatives)


def prepare_splits(
    train_pairs: Sequence[Pair],
    dev_pairs: Sequence[Pair],
    chunk_texts: Mapping[str, str],
    *,
    seed: int,
    use_hard_negatives: bool,
) -> tuple[Columns, Columns]:
    """Train and dev columns, validated; a :class:`TrainingDataError` names the offending pair."""
    if len(train_pairs) < 2:
        raise TrainingDataError(
            f"{len(train_pairs)} training pair(s): at least 2 are needed (in-batch negatives); "
            "the corpus is too small to train on"
        )
    with_negatives = use_hard_negatives and any(p.negative_ids for p in train_pairs)
    if use_hard_negatives and not with_negatives:
        logger.info(
            "no training pair carries mined negatives: training on (anchor, positive) pairs only"
        )
    if with_negatives and len(chunk_texts) < 2:
        raise TrainingDataError("hard negatives need at least 2 chunks")
    train = build_columns(
        train_pairs,
        chunk_texts,
        split="train",
        seed=seed,
        with_negatives=with_negatives,
        apply_weights=True,
    )
    dev = build_columns(
        dev_pairs,
        chunk_texts,
        split="dev",
        seed=seed,
        with_negatives=with_negatives,
        apply_weights=False,
    )
    if len(train) < 2:
        raise TrainingDataError(
            f"after applying pair weights only {len(train)} training example(s) remain of "
            f"{len(train_pairs)} pairs; "
            "weights below 1 drop pairs at random — check the pairs stage"
        )
    if len(train) != len(train_pairs):
        logger.info(
            "pair weights: %d training pairs expanded to %d examples", len(train_pairs), len(train)
        )
    return train, dev
