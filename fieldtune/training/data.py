"""Turning pairs that reference chunks by id into the text columns the trainer reads.

Which columns depends on the loss: each registered loss declares the layouts
it trains on (:class:`~fieldtune.training.losses.LossInput`), and
:func:`prepare_splits` builds the first one the pairs can supply, nothing
more. For today's losses that is ``anchor`` and ``positive``, plus
``negative`` when hard negatives are used. Pair weights are honoured by
deterministic resampling (see :func:`copies_for_weight`), because the
in-batch-negatives loss has no per-example weight.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fieldtune.hashing import texts_sha256, unit_hash
from fieldtune.training.errors import TrainingDataError
from fieldtune.training.losses import LOSSES, LossInput, LossSpec
from fieldtune.types import Pair

logger = logging.getLogger("fieldtune.training")

ANCHOR, POSITIVE, NEGATIVE, LABEL = "anchor", "positive", "negative", "label"
#: Columns every layout has, even with no rows (the others are left out when empty).
_ALWAYS = (ANCHOR, POSITIVE)


def negative_column(number: int) -> str:
    """The column of the ``number``-th (1-based) scored negative: ``negative_1``, ``negative_2``, ..."""
    return f"{NEGATIVE}_{number}"


def column_role(column: str) -> str | None:
    """Which saved prompt applies to a column: ``"query"``, ``"document"``, or None (the label)."""
    if column == ANCHOR:
        return "query"
    if column in (POSITIVE, NEGATIVE) or column.startswith(f"{NEGATIVE}_"):
        return "document"
    return None


@dataclass(frozen=True)
class Columns:
    """Parallel columns for one split, in the trainer's order, in the layout the loss asked for."""

    layout: LossInput
    data: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.data[ANCHOR])

    def __getitem__(self, column: str) -> list[Any]:
        return self.data[column]

    def as_dict(self) -> dict[str, list[Any]]:
        """The columns for ``datasets.Dataset.from_dict`` (an empty split keeps only anchor and positive)."""
        return {name: values for name, values in self.data.items() if values or name in _ALWAYS}

    def digest(self) -> str:
        """Content hash, so a checkpoint is only resumed on the same data."""
        return texts_sha256(
            text for name, values in self.as_dict().items() for text in (name, *map(_as_text, values))
        )


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


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


def _check_scores(pair: Pair, index: int, split: str, count: int) -> None:
    """A pair for a score-based loss: a teacher score for the positive and for each of ``count`` negatives."""
    where = f"{split} pair {index} (anchor {pair.anchor[:60]!r})"
    scores = pair.negative_scores
    if pair.score is None or scores is None:
        raise TrainingDataError(f"{where}: no teacher score; a score-based loss needs every pair scored")
    if len(scores) != len(pair.negative_ids) or len(scores) != count:
        raise TrainingDataError(
            f"{where}: {len(pair.negative_ids)} negatives with {len(scores)} scores; "
            f"every pair needs the same number of scored negatives ({count}, as the first pair)"
        )
    if not all(math.isfinite(value) for value in (pair.score, *scores)):
        raise TrainingDataError(f"{where}: teacher scores must be finite numbers")


def _column_names(layout: LossInput, negatives: int) -> list[str]:
    if layout is LossInput.PAIRS:
        return [ANCHOR, POSITIVE]
    if layout is LossInput.PAIRS_WITH_NEGATIVES:
        return [ANCHOR, POSITIVE, NEGATIVE]
    return [ANCHOR, POSITIVE, *(negative_column(n + 1) for n in range(negatives)), LABEL]


def build_columns(
    pairs: Sequence[Pair],
    chunk_texts: Mapping[str, str],
    *,
    split: str,
    seed: int,
    layout: LossInput,
    apply_weights: bool,
) -> Columns:
    """Validate ``pairs`` and expand them into the columns of ``layout``.

    With ``apply_weights`` each pair is repeated or dropped by
    :func:`copies_for_weight`; the dev split is not resampled, so its loss
    stays comparable across runs. In the ``pairs_with_negatives`` layout copy
    ``k`` of a pair uses its ``k``-th mined negative (cycling; mined negatives
    whose text is the positive's are skipped), and a pair without mined
    negatives gets a pseudo-random other chunk (an easy negative, which only
    adds one more candidate to the in-batch pool). In the ``scored_candidates``
    layout every row carries all of a pair's negatives and the teacher's scores.
    """
    with_negative = layout is LossInput.PAIRS_WITH_NEGATIVES
    scored = layout is LossInput.SCORED_CANDIDATES
    chunk_ids = sorted(chunk_texts) if with_negative else []
    count = len(pairs[0].negative_ids) if scored and pairs else 0
    data: dict[str, list[Any]] = {name: [] for name in _column_names(layout, count)}
    for index, pair in enumerate(pairs):
        _check_pair(pair, index, split, chunk_texts)
        if scored:
            _check_scores(pair, index, split, count)
        copies = (
            copies_for_weight(pair.weight, (seed, split, index, pair.anchor, pair.positive_id))
            if apply_weights
            else 1
        )
        positive = chunk_texts[pair.positive_id]
        # A "negative" with the positive's text would teach the model to push the answer away.
        mined = [n for n in pair.negative_ids if chunk_texts[n] != positive]
        for copy in range(copies):
            data[ANCHOR].append(pair.anchor)
            data[POSITIVE].append(positive)
            if with_negative:
                negative_id = (
                    mined[copy % len(mined)]
                    if mined
                    else _fallback_negative(pair, copy, seed, chunk_ids, chunk_texts)
                )
                data[NEGATIVE].append(chunk_texts[negative_id])
            elif scored:
                for number, negative_id in enumerate(pair.negative_ids, start=1):
                    data[negative_column(number)].append(chunk_texts[negative_id])
                data[LABEL].append([pair.score, *(pair.negative_scores or ())])
    return Columns(layout, data)


def choose_layout(spec: LossSpec, pairs: Sequence[Pair], *, use_hard_negatives: bool) -> LossInput:
    """The first of the loss's layouts that ``pairs`` (and the hard-negatives option) can supply."""
    has_negatives = any(p.negative_ids for p in pairs)
    scored = sum(p.score is not None and p.negative_scores is not None for p in pairs)
    for layout in spec.inputs:
        if layout is LossInput.PAIRS_WITH_NEGATIVES and use_hard_negatives and has_negatives:
            return layout
        if layout is LossInput.SCORED_CANDIDATES and pairs and scored == len(pairs):
            return layout
        if layout is LossInput.PAIRS:
            if use_hard_negatives and LossInput.PAIRS_WITH_NEGATIVES in spec.inputs:
                logger.info("no training pair carries mined negatives: training on (anchor, positive) pairs only")
            return layout
    raise TrainingDataError(
        f"loss {spec.name!r} trains on {' or '.join(i.value for i in spec.inputs)}, which these pairs "
        f"cannot supply: {scored} of {len(pairs)} carry teacher scores, "
        f"{sum(bool(p.negative_ids) for p in pairs)} carry negatives"
        f"{'' if use_hard_negatives else ' (and use_hard_negatives is off)'}"
    )


def prepare_splits(
    train_pairs: Sequence[Pair],
    dev_pairs: Sequence[Pair],
    chunk_texts: Mapping[str, str],
    *,
    seed: int,
    use_hard_negatives: bool,
    loss: str,
) -> tuple[Columns, Columns]:
    """Train and dev columns for the registered loss ``loss``, validated.

    A :class:`TrainingDataError` names the offending pair. Both splits get the
    layout chosen for the training pairs, so the dev loss is the same loss.
    """
    if len(train_pairs) < 2:
        raise TrainingDataError(
            f"{len(train_pairs)} training pair(s): at least 2 are needed (in-batch negatives); "
            "the corpus is too small to train on"
        )
    layout = choose_layout(LOSSES[loss], train_pairs, use_hard_negatives=use_hard_negatives)
    if layout is LossInput.PAIRS_WITH_NEGATIVES and len(chunk_texts) < 2:
        raise TrainingDataError("hard negatives need at least 2 chunks")
    train = build_columns(
        train_pairs, chunk_texts, split="train", seed=seed, layout=layout, apply_weights=True
    )
    dev = build_columns(
        dev_pairs, chunk_texts, split="dev", seed=seed, layout=layout, apply_weights=False
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
