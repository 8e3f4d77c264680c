"""Paired bootstrap over queries for the difference of two systems' mean scores."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PairedDifference:
    """``mean(a - b)`` over queries with its bootstrap 95% interval and two-sided p-value."""

    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    n_queries: int
    n_resamples: int

    @property
    def significant(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, *, n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> PairedDifference:
    """Resample query indices with replacement; the same indices for both systems.

    The p-value is the two-sided bootstrap tail probability of a difference on
    the other side of zero: ``2 * min(P(d* <= 0), P(d* >= 0))``, capped at 1.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired scores must be 1-d arrays of equal length, got {a.shape} and {b.shape}")
    n = len(a)
    if n == 0:
        raise ValueError("no queries to compare")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    # Blocks keep memory bounded for large query sets.
    block = max(1, 2_000_000 // n)
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = diff[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    p_value = min(1.0, 2 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0))))
    return PairedDifference(
        delta=float(diff.mean()), ci_low=float(low), ci_high=float(high),
        p_value=p_value, n_queries=n, n_resamples=n_resamples,
    )
