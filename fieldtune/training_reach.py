"""How many training pairs a time-budgeted training can reach, so mining prepares those and no more.

Mining encodes every pair's anchor and every derived positive (a sentence's
rest of chunk) before training starts, but on a CPU a training budget reaches
a small share of the pairs: on SciFact, 13,158 pairs were mined for a 5-minute
budget that trains a few hundred of them, and the derived positives alone
took 193 s to encode (Xeon, int8; about 550 s in fp32 on a Zen 3). A CPU
build therefore times one real training step of the base model first (a
forward and backward pass of one batch of anchors, positives and negatives at
the training sequence length) and mines a seeded sample of
``HEADROOM`` x the pairs the budget's steps consume. The trainer sees a
random sample of the mined pairs either way (it shuffles them), so the
sample changes which pairs it may draw, not how many or of which kinds.

The dev split is sampled with it (a quarter of the training pairs mined):
the trainer computes the dev loss every tenth of an epoch, and with a short
epoch the full dev split (1,368 pairs on SciFact) cost more than half the
budget. On CUDA, or without a budget, every pair is mined.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fieldtune.hardware import cuda_available, threads_for_idle_cores, torch_threads
from fieldtune.hashing import unit_hash
from fieldtune.types import Pair

logger = logging.getLogger("fieldtune.training_reach")

#: pairs mined per pair the timed steps would consume: covers a faster real step (bf16 autocast trained
#: 1.4x faster than fp32 on a Zen 4), a timing on a briefly busier machine, and pairs trained twice by weight
HEADROOM = 3.0
#: never fewer pairs than this many batches (a budget of a few steps still samples broadly)
MIN_BATCHES = 16
#: dev pairs kept per training pair mined, when the training pairs were sampled: the dev loss is computed
#: every tenth of an epoch, and on SciFact's 1,368 dev pairs one evaluation took about as long as 9 steps
DEV_SHARE = 0.25
#: never fewer dev pairs than this many batches
MIN_DEV_BATCHES = 4


@dataclass(frozen=True)
class Reach:
    """The pairs kept for mining and what decided their number (recorded in the build's manifest)."""

    pairs: list[Pair]
    step_seconds: float | None
    budget_seconds: float | None

    def stats(self, total: int) -> dict[str, object]:
        return {"pairs_offered": total, "pairs_mined": len(self.pairs), "probe_step_seconds": self.step_seconds,
                "budget_seconds": self.budget_seconds}


def seeded_order(pairs: Sequence[Pair], seed: int) -> list[int]:
    """A fixed shuffle of ``pairs`` (by a hash of each pair, so it does not depend on their file order)."""
    return sorted(range(len(pairs)), key=lambda i: (unit_hash(seed, "reach", pairs[i].anchor, pairs[i].positive_id), i))


def probe_step_seconds(base: str, anchors: list[str], positives: list[str], negatives: list[str], *,
                       max_seq_length: int) -> float:
    """Seconds of one fp32 training step of ``base`` on one batch (the second of two; the first warms up)."""
    import torch

    from fieldtune.models import load_model

    model = load_model(base, device="cpu")
    model.max_seq_length = max_seq_length
    model.train()
    seconds = math.inf
    with torch_threads(threads_for_idle_cores()):
        for _ in range(2):
            started = time.perf_counter()
            embedded = [model(model.tokenize(texts))["sentence_embedding"] for texts in (anchors, positives, negatives)]
            anchor, others = embedded[0], torch.cat(embedded[1:])
            scores = torch.nn.functional.normalize(anchor, dim=-1) @ torch.nn.functional.normalize(others, dim=-1).T
            loss = torch.nn.functional.cross_entropy(scores * 20.0, torch.arange(len(anchors)))
            loss.backward()
            seconds = time.perf_counter() - started
            model.zero_grad(set_to_none=True)
    return seconds


def pairs_within_reach(pairs: Sequence[Pair], texts: Mapping[str, str], *, base: str,
                       budget_minutes: float | None, batch_size: int, max_seq_length: int, seed: int) -> Reach:
    """The pairs worth mining for a training of ``budget_minutes``: all of them, or a seeded sample."""
    if not budget_minutes or cuda_available() or len(pairs) <= MIN_BATCHES * batch_size:
        return Reach(list(pairs), None, None)
    order = seeded_order(pairs, seed)
    batch = [pairs[i] for i in order[:batch_size]]
    chunk_ids = sorted(texts)
    negatives = [texts[chunk_ids[int(unit_hash(seed, "probe", i) * len(chunk_ids))]] for i in range(len(batch))]
    step = probe_step_seconds(base, [p.anchor for p in batch], [texts[p.positive_id] for p in batch], negatives,
                              max_seq_length=max_seq_length)
    budget = budget_minutes * 60
    keep = max(MIN_BATCHES, math.ceil(HEADROOM * budget / step)) * batch_size
    if keep >= len(pairs):
        return Reach(list(pairs), step, budget)
    logger.info("mining %d of %d training pairs: one training step took %.1fs here, so a %s-min budget reaches "
                "about %d steps (%d pairs); %.0fx that is mined", keep, len(pairs), step, f"{budget_minutes:g}",
                budget / step, budget / step * batch_size, HEADROOM)
    return Reach([pairs[i] for i in sorted(order[:keep])], step, budget)


def dev_within_reach(pairs: Sequence[Pair], reach: Reach, *, offered: int, batch_size: int, seed: int) -> list[Pair]:
    """The dev pairs worth mining: all of them, or (when the training pairs were sampled) a seeded sample.

    The trainer evaluates the dev loss about every tenth of an epoch; a sampled
    training split makes epochs short and evaluations frequent, so the dev split
    shrinks with it (``DEV_SHARE`` of the training pairs mined).
    """
    if len(reach.pairs) >= offered:
        return list(pairs)
    keep = max(MIN_DEV_BATCHES * batch_size, math.ceil(DEV_SHARE * len(reach.pairs)))
    if keep >= len(pairs):
        return list(pairs)
    order = seeded_order(pairs, seed)
    logger.info("mining %d of %d dev pairs (a quarter of the training pairs mined)", keep, len(pairs))
    return [pairs[i] for i in sorted(order[:keep])]
