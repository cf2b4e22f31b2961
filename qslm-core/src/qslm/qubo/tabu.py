"""``tabu``: one-flip tabu search with many independent searches advancing together in numpy.

Our own code so that the core has a strong classical baseline without a dwave dependency
(dwave-samplers' TabuSampler is the reference). Each search ("chain") keeps its local fields,
so every move's energy change is known; each iteration flips, in every chain at once, the
best move that is not tabu (or that beats the best energy found so far: aspiration), and
updates the fields with one row of the coupling matrix per chain. A chain that has not
improved its own best for ``stall`` iterations restarts from a perturbed copy of the best
solution found by any chain, or from a random one.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
from pydantic import Field

from qslm import __version__
from qslm.components import Options
from qslm.qubo.model import Qubo
from qslm.qubo.solver import (
    Capabilities,
    Deadline,
    QuboSolver,
    SolveResult,
    effective_time_limit,
    resolve_seed,
)

MAX_VARIABLES = 10_000  # the solver keeps a dense n x n coupling matrix
_CHECK_EVERY = 16  # iterations between looks at the clock


class TabuSolver(QuboSolver):
    """Tabu search: one-flip moves, tabu tenure, aspiration, restarts on stagnation."""

    class Options(Options):
        num_chains: int = Field(
            default=16,
            ge=1,
            le=10_000,
            description="Independent searches, run together; each returns its best solution.",
        )
        num_iterations: int | None = Field(
            default=None, ge=1, description="Most moves per chain; default max(1000, 50 n)."
        )
        patience: int | None = Field(
            default=None,
            ge=1,
            description="Stop when the best energy of all chains has not improved for this many "
            "moves; default max(100, n). Set it to num_iterations to always run them all.",
        )
        tenure: int | None = Field(
            default=None,
            ge=1,
            description="Moves a flipped variable stays tabu; default max(5, n // 50) + 0..4 per "
            "chain.",
        )
        stall: int | None = Field(
            default=None,
            ge=1,
            description="Restart a chain after this many moves without improving it; default "
            "max(200, 2 n).",
        )
        time_limit: float | None = Field(default=None, gt=0)

    capabilities: ClassVar[Capabilities] = Capabilities(max_variables=MAX_VARIABLES)
    name: ClassVar[str] = "tabu"
    version: ClassVar[str] = __version__

    def solve(
        self, qubo: Qubo, *, seed: int | None = None, time_limit: float | None = None
    ) -> SolveResult:
        self.check_problem(qubo)
        started = time.perf_counter()
        opts = self.options
        deadline = Deadline(effective_time_limit(opts.time_limit, time_limit), started)
        seed = resolve_seed(seed)
        q = qubo.as_min()
        n, r = q.num_variables, opts.num_chains
        if n == 0:
            return self.result(qubo, np.zeros((1, 0)), started=started, seed=seed)
        rng = np.random.default_rng(seed)
        w = q.coupling_matrix()
        c = q.linear
        iterations = opts.num_iterations or max(1000, 50 * n)
        patience = opts.patience or max(100, n)
        stall = opts.stall or max(200, 2 * n)
        base = opts.tenure or max(5, n // 50)
        tenure = np.minimum(base + rng.integers(0, 5, size=r), max(n - 1, 0))
        rows = np.arange(r)

        x = rng.integers(0, 2, size=(r, n)).astype(np.float64)
        g = c + x @ w  # flipping x_i changes the energy by s_i * g_i
        s = 1.0 - 2.0 * x
        f = x @ c + 0.5 * np.einsum("ij,ij->i", x @ w, x)
        chain_best = f.copy()
        chain_best_s = s.copy()
        best_f = float(f.min())
        best_s = s[int(f.argmin())].copy()
        best_at = 0
        last_improved = np.zeros(r, dtype=np.int64)
        tabu = np.zeros((r, n), dtype=np.int64)  # the iteration until which a flip is tabu
        tol = 1e-9 * max(1.0, float(np.abs(c).max()), float(np.abs(w).max()))
        status = "ok"
        restarts = 0
        it = 0
        for it in range(1, iterations + 1):
            d = s * g
            allowed = (tabu < it) | (d < ((best_f - tol) - f)[:, None])  # aspiration
            i = np.where(allowed, d, np.inf).argmin(axis=1)
            dx = s[rows, i]
            f += d[rows, i]
            g += dx[:, None] * w[i]
            s[rows, i] = -dx
            tabu[rows, i] = it + tenure
            improved = f < chain_best - tol
            if improved.any():
                chain_best[improved] = f[improved]
                chain_best_s[improved] = s[improved]
                last_improved[improved] = it
                k = int(f.argmin())
                if f[k] < best_f - tol:
                    best_f, best_s = float(f[k]), s[k].copy()
                    best_at = it
            if it % _CHECK_EVERY:
                continue
            if deadline.expired():
                status = "timeout"
                break
            if it - best_at >= patience:
                break
            stuck = np.flatnonzero(it - last_improved >= stall)
            if stuck.size:
                restarts += stuck.size
                self._restart(stuck, best_s, rng, s, g, f, tabu, c, w)
                last_improved[stuck] = it
                chain_best[stuck] = f[stuck]
                chain_best_s[stuck] = s[stuck]
        # The best of all chains and each chain's best, without repeats (result() sorts them).
        samples = np.unique(np.vstack([best_s[None, :], chain_best_s]) < 0, axis=0)
        info = {"num_chains": r, "iterations": it, "restarts": restarts, "tenure": tenure.tolist()}
        return self.result(qubo, samples, started=started, seed=seed, status=status, info=info)

    @staticmethod
    def _restart(
        stuck: np.ndarray,
        elite: np.ndarray,
        rng: np.random.Generator,
        s: np.ndarray,
        g: np.ndarray,
        f: np.ndarray,
        tabu: np.ndarray,
        c: np.ndarray,
        w: np.ndarray,
    ) -> None:
        # Half the restarts perturb the best solution of all chains (flip up to a quarter of
        # the variables), half start afresh: intensification and diversification.
        n = s.shape[1]
        k = stuck.size
        fresh = rng.random(k) < 0.5
        flip = rng.random((k, n)) < rng.uniform(0.05, 0.25, size=(k, 1))
        new_s = np.where(flip, -elite, elite)
        new_s[fresh] = np.where(rng.random((int(fresh.sum()), n)) < 0.5, 1.0, -1.0)
        x = (new_s < 0).astype(np.float64)
        s[stuck] = new_s
        g[stuck] = c + x @ w
        f[stuck] = x @ c + 0.5 * np.einsum("ij,ij->i", x @ w, x)
        tabu[stuck] = 0
