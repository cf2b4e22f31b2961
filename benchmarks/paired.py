"""Paired comparison over seeds, shared by the selection benchmarks: the same seed gives every
arm the same initial model and batches, so per-seed differences cancel what the seed does."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def paired(a: Sequence[float], b: Sequence[float]) -> dict:
    """``a - b`` per seed: mean, std, a 95% t interval, how often ``a`` is lower, and the
    two-sided sign-test p-value (scipy's exact binomial test, ties dropped)."""
    from scipy import stats

    diffs = [x - y for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    mean = statistics.mean(diffs)
    std = statistics.stdev(diffs) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1)) * std / n**0.5 if n > 1 else float("nan")
    lower, higher = sum(d < 0 for d in diffs), sum(d > 0 for d in diffs)
    sign_p = float(stats.binomtest(lower, lower + higher).pvalue) if lower + higher else 1.0
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "ci95": [mean - half, mean + half],
        "lower": lower,
        "higher": higher,
        "sign_p": sign_p,
        "diffs": diffs,
    }


def describe(d: dict, digits: int = 4) -> str:
    """One cell: ``-0.0050 [-0.0087, -0.0013], lower 3/3, sign p 0.25``."""
    lo, hi = d["ci95"]
    return (
        f"{d['mean']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}], "
        f"lower {d['lower']}/{d['n']}, sign p {d['sign_p']:.2g}"
    )
