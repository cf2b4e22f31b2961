"""The exact-knapsack baseline and the paired statistics of the selection benchmarks
(``benchmarks/module_selection.py``, ``benchmarks/select_perplexity.py``): their claims rest
on these two pieces, so they are checked here in milliseconds; the benchmarks themselves
train models and take minutes, too long for CI."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import module_selection
    import paired

    return module_selection, paired


def test_knapsack_is_the_brute_force_optimum(bench):
    module_selection, _ = bench
    rng = np.random.default_rng(7)
    for _ in range(20):
        values = rng.random(8)
        weights = rng.integers(1, 50, 8)
        capacity = int(rng.integers(1, weights.sum()))
        best = max(
            (values[list(s)].sum(), s)
            for r in range(9)
            for s in itertools.combinations(range(8), r)
            if weights[list(s)].sum() <= capacity
        )[0]
        mask = module_selection.knapsack(values, weights, capacity)
        assert weights[mask].sum() <= capacity
        assert values[mask].sum() == pytest.approx(best, abs=1e-9)


def test_paired_differences_interval_and_sign_test(bench):
    _, paired = bench
    d = paired.paired([1.0, 2.0, 3.5], [2.0, 2.5, 4.0])
    assert d["diffs"] == [-1.0, -0.5, -0.5]
    assert d["mean"] == pytest.approx(-2 / 3)
    assert d["lower"] == 3 and d["higher"] == 0
    assert d["sign_p"] == pytest.approx(0.25)  # 3 of 3 the same way: 2 * 0.5**3
    lo, hi = d["ci95"]
    # t interval with 2 degrees of freedom: -0.667 +- 4.303 * 0.2887 / sqrt(3) = +- 0.7171
    assert lo == pytest.approx(-2 / 3 - 0.717109, abs=1e-5)
    assert hi == pytest.approx(-2 / 3 + 0.717109, abs=1e-5)
