from __future__ import annotations

import numpy as np
import pytest

from fieldtune.evaluate.bootstrap import paired_bootstrap


def test_planted_difference_is_found() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.8, size=200)
    better = np.clip(base + 0.05 + rng.normal(0, 0.05, size=200), 0, 1)
    result = paired_bootstrap(better, base, seed=3)
    assert result.delta == pytest.approx(float((better - base).mean()))
    assert 0 < result.ci_low < result.delta < result.ci_high
    assert result.p_value < 0.01 and result.significant


def test_no_difference_is_not_significant() -> None:
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 1, size=150)
    b = a + rng.normal(0, 0.1, size=150)  # noise around zero
    result = paired_bootstrap(a, b, seed=0)
    assert result.ci_low < 0 < result.ci_high
    assert result.p_value > 0.05 and not result.significant


def test_pairing_matters() -> None:
    # Per-query differences are constant: a paired test is certain, whatever the spread across queries.
    a = np.linspace(0, 1, 50)
    result = paired_bootstrap(a + 0.01, a, seed=0)
    assert result.ci_low == pytest.approx(0.01) and result.ci_high == pytest.approx(0.01)


def test_seeded_and_validated() -> None:
    a, b = np.arange(10.0), np.arange(10.0)[::-1]
    assert paired_bootstrap(a, b, seed=5) == paired_bootstrap(a, b, seed=5)
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap(a, b[:5])
    with pytest.raises(ValueError, match="no queries"):
        paired_bootstrap(np.array([]), np.array([]))
