"""``example.greedy``: steepest descent from random starting points.

Each restart begins at a random 0/1 assignment and flips, while any flip lowers the energy,
the variable that lowers it most: it ends in a local minimum (no single flip improves). The
restarts run in batches, vectorised in numpy, and the best distinct local minima are returned.
It is a baseline, not a strong solver: it cannot climb out of a local minimum, so on problems
with constraint penalties (e.g. exactly-k) it usually stops at the first feasible point it
meets; tabu search or annealing do better there.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
from pydantic import Field

from qslm.api import (
    Capabilities,
    Deadline,
    Options,
    Qubo,
    QuboSolver,
    SolveResult,
    effective_time_limit,
    resolve_seed,
)
from qslm_example_greedy import __version__

BATCH = 64  # restarts advanced together
KEEP = 16  # distinct local minima returned at most


class GreedyOptions(Options):
    restarts: int = Field(default=32, ge=1, description="Random starting points.")
    time_limit: float | None = Field(
        default=None, gt=0, description="Seconds; stop and return the best found so far."
    )


class GreedySolver(QuboSolver):
    """Steepest descent with random restarts."""

    Options = GreedyOptions
    # The solver keeps a dense n x n coupling matrix: 5000 variables are 200 MB.
    capabilities: ClassVar[Capabilities] = Capabilities(max_variables=5000)
    name: ClassVar[str] = "example.greedy"
    version: ClassVar[str] = __version__
    too_large_hint: ClassVar[str] = "it keeps a dense coupling matrix; use 'anneal'"

    def solve(
        self, qubo: Qubo, *, seed: int | None = None, time_limit: float | None = None
    ) -> SolveResult:
        self.check_problem(qubo)  # refuse a too-large problem before any work
        started = time.perf_counter()
        deadline = Deadline(effective_time_limit(self.options.time_limit, time_limit), started)
        seed = resolve_seed(seed)
        q = qubo.as_min()
        n = q.num_variables
        if n == 0:
            return self.result(qubo, np.zeros((1, 0)), started=started, seed=seed)
        c, w = q.linear, q.coupling_matrix()
        rng = np.random.default_rng(seed)
        found: list[np.ndarray] = []
        status, done = "ok", 0
        while done < self.options.restarts:
            if found and deadline.expired():
                status = "timeout"
                break
            x = rng.integers(0, 2, size=(min(BATCH, self.options.restarts - done), n))
            x = x.astype(np.float64)
            finished = _descend(x, c, w, deadline)
            found.append(x)  # a descent cut short still holds valid samples
            done += x.shape[0]
            if not finished:
                status = "timeout"
                break
        samples = np.unique(np.concatenate(found).astype(np.uint8), axis=0)
        energies = q.energies(samples)
        best = samples[np.argsort(energies, kind="stable")[:KEEP]]
        info = {"restarts": done}
        return self.result(qubo, best, started=started, seed=seed, status=status, info=info)


def _descend(x: np.ndarray, c: np.ndarray, w: np.ndarray, deadline: Deadline) -> bool:
    """Steepest descent of every row of ``x`` in place; False if stopped by the deadline.

    Flipping x_i changes the energy by ``(1 - 2 x_i) * g_i`` with local field ``g = c + W x``.
    """
    g = c + x @ w
    active = np.arange(x.shape[0])
    tol = 1e-12 * max(1.0, float(np.abs(g).max()))
    while active.size:
        if deadline.expired():
            return False
        delta = (1.0 - 2.0 * x[active]) * g[active]
        i = delta.argmin(axis=1)
        improves = delta[np.arange(active.size), i] < -tol
        active, i = active[improves], i[improves]
        step = 1.0 - 2.0 * x[active, i]  # +1 sets the bit, -1 clears it
        x[active, i] += step
        g[active] += step[:, None] * w[i]
    return True
