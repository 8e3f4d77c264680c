"""Mining only the training pairs a CPU budget can reach: a timed real step sizes a seeded sample."""

from __future__ import annotations

import math

from fieldtune.training_reach import HEADROOM, MIN_BATCHES, pairs_within_reach, seeded_order
from fieldtune.types import Pair, PairKind

TEXTS = {f"doc{i}#0": f"Passage {i} about Kostka numbers, Young tableaux and symmetric functions." for i in range(50)}
PAIRS = [Pair(anchor=f"question {i} on tableaux", positive_id=f"doc{i % 50}#0", kind=PairKind.TITLE,
              group=f"doc{i % 50}") for i in range(300)]


def _reach(budget_minutes: float | None):
    return pairs_within_reach(PAIRS, TEXTS, base="minilm", budget_minutes=budget_minutes, batch_size=4,
                              max_seq_length=32, seed=7)


def test_a_small_budget_mines_a_seeded_sample_sized_by_a_timed_step() -> None:
    reach = _reach(0.01)
    assert reach.step_seconds is not None and reach.step_seconds > 0
    expected = max(MIN_BATCHES, math.ceil(HEADROOM * 0.6 / reach.step_seconds)) * 4
    assert len(reach.pairs) == min(expected, len(PAIRS)) < len(PAIRS)
    kept = set(seeded_order(PAIRS, 7)[: len(reach.pairs)])
    assert reach.pairs == [pair for i, pair in enumerate(PAIRS) if i in kept]  # in file order
    assert reach.stats(len(PAIRS))["pairs_mined"] == len(reach.pairs)


def test_no_budget_or_a_large_one_mines_every_pair() -> None:
    assert _reach(None).pairs == PAIRS and _reach(None).step_seconds is None
    assert _reach(600.0).pairs == PAIRS


def test_the_sample_does_not_depend_on_the_pairs_file_order() -> None:
    order = seeded_order(PAIRS, 7)
    reversed_order = seeded_order(PAIRS[::-1], 7)
    assert [PAIRS[i] for i in order] == [PAIRS[::-1][i] for i in reversed_order]


def test_the_dev_split_shrinks_with_a_sampled_training_split_only() -> None:
    from fieldtune.training_reach import DEV_SHARE, MIN_DEV_BATCHES, Reach, dev_within_reach

    dev = PAIRS[:200]
    sampled = Reach(PAIRS[:100], step_seconds=1.0, budget_seconds=60.0)
    kept = dev_within_reach(dev, sampled, offered=len(PAIRS), batch_size=4, seed=7)
    assert len(kept) == max(MIN_DEV_BATCHES * 4, math.ceil(DEV_SHARE * 100)) and set(kept) <= set(dev)
    assert set(kept) == set(dev_within_reach(dev[::-1], sampled, offered=len(PAIRS), batch_size=4, seed=7))
    everything = Reach(list(PAIRS), step_seconds=None, budget_seconds=None)
    assert dev_within_reach(dev, everything, offered=len(PAIRS), batch_size=4, seed=7) == dev
