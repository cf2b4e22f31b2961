"""Small problems with known answers, for testing solvers and formulations."""

from __future__ import annotations

import itertools

import numpy as np

from qslm.qubo.model import Qubo, Sense


def random_qubo(
    n: int,
    *,
    density: float = 0.5,
    sense: Sense = "min",
    seed: int = 0,
    offset: float = 0.0,
    labels: list | None = None,
) -> Qubo:
    """A random Qubo: normal linear weights and a ``density`` share of normal pair weights."""
    rng = np.random.default_rng(seed)
    quad = rng.normal(size=(n, n)) * (rng.random((n, n)) < density)
    return Qubo(rng.normal(size=n), np.triu(quad, 1), offset, labels=labels, sense=sense)


def all_assignments(n: int) -> np.ndarray:
    """Every 0/1 assignment of ``n`` variables, (2^n, n) uint8."""
    if n > 22:
        raise ValueError(f"2^{n} assignments is too many to list")
    return np.array(list(itertools.product((0, 1), repeat=n)), dtype=np.uint8).reshape(-1, n)


def brute_force(qubo: Qubo) -> tuple[float, np.ndarray]:
    """The optimal energy (in the Qubo's sense) and one optimal sample, by enumeration."""
    x = all_assignments(qubo.num_variables)
    e = qubo.energies(x)
    i = int(np.argmax(e) if qubo.sense == "max" else np.argmin(e))
    return float(e[i]), x[i]
