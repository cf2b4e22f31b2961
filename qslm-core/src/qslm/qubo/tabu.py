"""``tabu``: one-flip tabu search with many independent searches advancing together in numpy.

Our own code so that the core has a strong classical baseline without a dwave dependency
(dwave-samplers' TabuSampler is the reference). Each search ("chain") keeps its local fields,
so every move's energy change is known; each iteration flips, in every chain at once, the
best move that is not tabu (or that beats the best energy found so far: aspiration), and
updates the fields with one row of the coupling matrix per chain. A chain that has not
improved its own best for ``stall`` iterations restarts from a perturbed copy of the best
solution found by any chain, or from a random one.

That is the numpy engine. With numba installed (``qslm-core[fast]``) the default engine is
the compiled one in :mod:`qslm.qubo.fast_solvers` (sparse storage, one replica per thread);
``engine = "numpy"`` keeps this one, which is also the reference the kernels are tested
against.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
from pydantic import Field, field_validator

from qslm import __version__
from qslm.components import Options
from qslm.qubo import fast
from qslm.qubo.anneal import ENGINE_DOC, MAX_VARIABLES, Engine, check_numpy_size
from qslm.qubo.model import Qubo
from qslm.qubo.solver import (
    Capabilities,
    Deadline,
    QuboSolver,
    SolveResult,
    effective_time_limit,
    resolve_seed,
)

_CHECK_EVERY = 16  # iterations between looks at the clock
TIED_MAGNITUDES = 4  # pair weights with at most this many distinct magnitudes: many ties


def default_tenure(q: Qubo) -> int:
    """The default tenure: max(5, n // 20) when the pair weights take at most
    ``TIED_MAGNITUDES`` distinct magnitudes, else max(5, n // 50).

    With few magnitudes (max-cut with unit or +-1 weights) many moves have the same gain
    and a short memory cycles on the plateaus; with many (Beasley's bqp) a long tenure
    forbids too much. Measured with benchmarks/tabu_tune.py at a fixed number of moves: on
    generated 800-node G-set-style graphs n // 20 reached higher mean cuts than n // 50 on 8
    of 8 (n // 15 about the same, n // 10 no better, n // 5 worse); on generated
    Beasley-style instances n // 50 needed 10-150x fewer moves to the best value than
    n // 20 (n = 1000) and ended higher (n = 2500).
    """
    n = q.num_variables
    w = q.quadratic.data if q.is_sparse else q.quadratic[q.quadratic != 0]
    tied = np.unique(np.abs(w[w != 0])).size <= TIED_MAGNITUDES
    return max(5, n // (20 if tied else 50))


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
            description="Moves a flipped variable stays tabu; default (default_tenure) "
            "max(5, n // 20) when the pair weights take at most 4 distinct magnitudes (as "
            "max-cut with unit or +-1 weights: many moves tie), else max(5, n // 50); "
            "+ 0..4 per chain.",
        )
        stall: int | None = Field(
            default=None,
            ge=1,
            description="Restart a chain after this many moves without improving it; default "
            "max(200, 2 n) (numpy engine) or max(200, 10 n) (numba engine: 10 n found more on "
            "generated max-cut and Beasley-style instances of 800-1000 variables, "
            "docs/benchmarks/solvers.md).",
        )
        time_limit: float | None = Field(default=None, gt=0)
        target: float | None = Field(
            default=None,
            description="Stop as soon as a solution this good (in the problem's sense, offset "
            "included) is found; for time-to-target measurements.",
        )
        restart_flips: list[float] = Field(
            default=[0.05, 0.25],
            min_length=2,
            max_length=2,
            description="[least, most] share of the variables a restart flips (numba engine: "
            "from the chain's own best; numpy engine: from the best of all chains).",
        )
        engine: Engine = Field(default="auto", description=ENGINE_DOC)
        threads: int | None = Field(
            default=None,
            ge=1,
            description="Threads for the numba engine's chains; default the usable cores.",
        )

        @field_validator("restart_flips")
        @classmethod
        def _shares(cls, v: list[float]) -> list[float]:
            if not 0 <= v[0] <= v[1] <= 1:
                raise ValueError("must be [least, most] with 0 <= least <= most <= 1")
            return v

    capabilities: ClassVar[Capabilities] = Capabilities(
        max_variables=fast.max_variables(MAX_VARIABLES)
    )
    name: ClassVar[str] = "tabu"
    version: ClassVar[str] = __version__

    def solve(
        self, qubo: Qubo, *, seed: int | None = None, time_limit: float | None = None
    ) -> SolveResult:
        self.check_problem(qubo)
        compile_s = fast.compile_first(self)  # before the clock: the limit is the search's
        result = self._solve(qubo, seed, time_limit)
        if compile_s:
            result.timings["compile_s"] = round(compile_s, 3)
        return result

    def _solve(self, qubo: Qubo, seed: int | None, time_limit: float | None) -> SolveResult:
        started = time.perf_counter()
        opts = self.options
        deadline = Deadline(effective_time_limit(opts.time_limit, time_limit), started)
        seed = resolve_seed(seed)
        q = qubo.as_min()
        n = q.num_variables
        if n == 0:
            return self.result(qubo, np.zeros((1, 0)), started=started, seed=seed)
        iterations = opts.num_iterations or max(1000, 50 * n)
        patience = opts.patience or max(100, n)
        engine = fast.resolve_engine(opts.engine, self.name)
        stall = opts.stall or max(200, (10 if engine == "numba" else 2) * n)
        base = opts.tenure or default_tenure(q)
        target = -np.inf
        if opts.target is not None:
            target = (opts.target if qubo.sense == "min" else -opts.target) - q.offset
        params = (iterations, patience, stall, base, target)
        if engine == "numba":
            return self._solve_fast(qubo, q, params, seed, deadline, started)
        check_numpy_size(self.name, n)
        return self._solve_numpy(qubo, q, params, seed, deadline, started)

    def _solve_numpy(
        self,
        qubo: Qubo,
        q: Qubo,
        params: tuple[int, int, int, int, float],
        seed: int,
        deadline: Deadline,
        started: float,
    ) -> SolveResult:
        """The numpy engine: all chains advance together, one flip each per iteration."""
        opts = self.options
        iterations, patience, stall, base, target = params
        n, r = q.num_variables, opts.num_chains
        rng = np.random.default_rng(seed)
        w = q.coupling_matrix()
        c = q.linear
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
            if it - best_at >= patience or best_f <= target:
                break
            stuck = np.flatnonzero(it - last_improved >= stall)
            if stuck.size:
                restarts += stuck.size
                self._restart(stuck, best_s, rng, s, g, f, tabu, c, w, opts.restart_flips)
                last_improved[stuck] = it
                chain_best[stuck] = f[stuck]
                chain_best_s[stuck] = s[stuck]
        # The best of all chains and each chain's best, without repeats (result() sorts them).
        samples = np.unique(np.vstack([best_s[None, :], chain_best_s]) < 0, axis=0)
        info = {
            "engine": "numpy",
            "num_chains": r,
            "iterations": it,
            "restarts": restarts,
            "tenure": tenure.tolist(),
        }
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
        shares: list[float],
    ) -> None:
        # Half the restarts perturb the best solution of all chains (flip a share of the
        # variables), half start afresh: intensification and diversification.
        n = s.shape[1]
        k = stuck.size
        fresh = rng.random(k) < 0.5
        flip = rng.random((k, n)) < rng.uniform(shares[0], shares[1], size=(k, 1))
        new_s = np.where(flip, -elite, elite)
        new_s[fresh] = np.where(rng.random((int(fresh.sum()), n)) < 0.5, 1.0, -1.0)
        x = (new_s < 0).astype(np.float64)
        s[stuck] = new_s
        g[stuck] = c + x @ w
        f[stuck] = x @ c + 0.5 * np.einsum("ij,ij->i", x @ w, x)
        tabu[stuck] = 0

    def _solve_fast(
        self,
        qubo: Qubo,
        q: Qubo,
        limits: tuple[int, int, int, int, float],
        seed: int,
        deadline: Deadline,
        started: float,
    ) -> SolveResult:
        from qslm.qubo import fast_solvers

        opts = self.options
        n = q.num_variables
        iterations, patience, stall, base, target = limits
        lo, hi = (max(1, round(share * n)) for share in opts.restart_flips)
        settings = fast_solvers.TabuSettings(
            num_chains=opts.num_chains,
            iterations=iterations,
            patience=patience,
            tenure=min(base, max(n - 1, 0)),
            spread=5 if n > base + 5 else 1,
            stall=stall,
            restart_flips=(min(lo, n), min(hi, n)),
            target=target,
        )
        run = fast_solvers.tabu(q, settings, seed=seed, deadline=deadline, threads=opts.threads)
        status = "timeout" if run.timed_out else "ok"
        samples = np.unique(run.samples, axis=0)
        return self.result(qubo, samples, started=started, seed=seed, status=status, info=run.info)
