"""``anneal``: simulated annealing with all replicas advancing together in numpy.

Our own code so that the core anneals without a dwave dependency (dwave-samplers'
SimulatedAnnealingSampler is the reference it is benchmarked against). What it adds is the
vectorisation: the variables are greedily coloured so that no two in a colour class are
coupled, and relabelled so each class is a contiguous slice; a Metropolis update of one whole
class is then exact (its members do not interact) and costs a handful of numpy calls for all
``num_reads`` replicas at once, with the local fields kept up to date by one matrix product.
A sweep visits every class once. A final steepest descent puts every read in a local minimum.

That is the numpy engine. With numba installed (``qslm-core[fast]``) the default engine is
the compiled one in :mod:`qslm.qubo.fast_solvers` (sparse storage, one replica per thread);
``engine = "numpy"`` keeps this one, which is also the reference the kernels are tested
against.
"""

from __future__ import annotations

import time
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from qslm import __version__
from qslm.components import Options
from qslm.qubo import fast
from qslm.qubo.model import Qubo
from qslm.qubo.solver import (
    Capabilities,
    Deadline,
    ProblemTooLarge,
    QuboSolver,
    SolveResult,
    effective_time_limit,
    resolve_seed,
)

MAX_VARIABLES = 10_000  # the numpy engine keeps a dense n x n coupling matrix
Engine = Literal["auto", "numba", "numpy"]
ENGINE_DOC = """Which implementation runs: "numba" (compiled single-flip kernels on sparse storage,
replicas over the cores; needs qslm-core[fast]), "numpy" (vectorised over replicas, dense), or
"auto" (numba when installed)."""


def check_numpy_size(solver: str, n: int) -> None:
    """The numpy engines hold a dense n x n matrix: refuse more than MAX_VARIABLES."""
    if n > MAX_VARIABLES:
        raise ProblemTooLarge(
            f"QUBO solver {solver!r}: the numpy engine holds a dense matrix and takes at most "
            f"{MAX_VARIABLES} variables, the problem has {n}; install qslm-core[fast] (numba)"
        )


def color_classes(w: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Greedy (largest degree first) colouring of the coupling graph.

    Returns a permutation that groups each colour class together and the ``(start, stop)``
    slices of the classes in the permuted order.
    """
    n = w.shape[0]
    adj = w != 0
    degree = adj.sum(axis=1)
    colors = np.full(n, -1, dtype=np.int64)
    taken = np.zeros(n + 1, dtype=bool)
    for v in np.argsort(-degree, kind="stable"):
        used = colors[adj[v]]
        used = used[used >= 0]
        taken[used] = True
        colors[v] = int(np.argmin(taken))
        taken[used] = False
    order = np.argsort(colors, kind="stable")
    counts = np.bincount(colors, minlength=1) if n else np.zeros(0, dtype=np.int64)
    stops = np.cumsum(counts)
    bounds = [(int(a), int(b)) for a, b in zip(stops - counts, stops, strict=True) if b > a]
    return order, bounds


def default_beta_range(linear: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Hot and cold inverse temperatures from the weights, as dwave-samplers derives them.

    In the Ising form of the problem, hot: the largest possible single-flip energy change is
    accepted with probability 1/2; cold: the smallest non-zero one is accepted with
    probability 1% (divided by how many variables share that smallest gap).
    """
    j = w / 4  # the Ising couplings (symmetric), h = linear/2 + row sums of w/4
    h = linear / 2 + j.sum(axis=1)
    abs_j = np.abs(j)
    total = np.abs(h) + abs_j.sum(axis=1)
    max_field = float(total.max()) if total.size else 0.0
    hot = 1.0 if max_field == 0 else float(np.log(2) / (2 * max_field))
    masked = np.where(abs_j > 0, abs_j, np.inf).min(axis=1) if w.size else np.zeros(0)
    gaps = np.where(total > 0, np.minimum(masked, np.where(total > 0, total, np.inf)), np.inf)
    gaps = gaps[np.isfinite(gaps)]
    if gaps.size == 0:
        return hot, hot
    smallest = float(gaps.min())
    count = int(np.sum(gaps == smallest))
    cold = float(np.log(count / 0.01) / (2 * smallest))
    return hot, max(cold, hot)


def steepest_descent(
    s: np.ndarray, g: np.ndarray, w: np.ndarray, max_rounds: int | None = None
) -> None:
    """Flip, in each replica, the variable that lowers its energy most until none does.

    ``s`` holds ``1 - 2x`` (+1 for 0, -1 for 1) and ``g`` the local fields ``c + W x`` of
    every replica (rows); both are updated in place.
    """
    tol = 1e-9 * max(1.0, float(np.abs(g).max()) if g.size else 1.0)
    active = np.arange(s.shape[0])
    rounds = 0
    while active.size and (max_rounds is None or rounds < max_rounds):
        d = s[active] * g[active]
        i = d.argmin(axis=1)
        better = d[np.arange(active.size), i] < -tol
        active, i = active[better], i[better]
        if not active.size:
            break
        dx = s[active, i]
        s[active, i] = -dx
        g[active] += dx[:, None] * w[i]
        rounds += 1


class AnnealSolver(QuboSolver):
    """Simulated annealing (Metropolis, geometric beta schedule), vectorised over reads."""

    class Options(Options):
        num_reads: int = Field(
            default=32,
            ge=1,
            le=100_000,
            description="Independent anneals (replicas), run together.",
        )
        num_sweeps: int | None = Field(
            default=None,
            ge=1,
            description="Sweeps per anneal (each offers every variable one flip); default n "
            "clipped to [50, 1000].",
        )
        beta_range: list[float] | None = Field(
            default=None,
            min_length=2,
            max_length=2,
            description="[hot, cold] inverse temperatures; default derived from the weights.",
        )
        polish: bool = Field(
            default=True,
            description="End with a steepest descent, so every read is a local minimum.",
        )
        time_limit: float | None = Field(default=None, gt=0)
        engine: Engine = Field(default="auto", description=ENGINE_DOC)
        threads: int | None = Field(
            default=None,
            ge=1,
            description="Threads for the numba engine's reads; default the usable cores.",
        )

        @field_validator("beta_range")
        @classmethod
        def _increasing(cls, v: list[float] | None) -> list[float] | None:
            if v is not None and not 0 < v[0] <= v[1]:
                raise ValueError("must be [hot, cold] with 0 < hot <= cold")
            return v

    # max_energy: the numpy sweeps run in float32 (3.4e38 at most), sums of up to n weights included
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_variables=fast.max_variables(MAX_VARIABLES), max_energy=1e30
    )
    name: ClassVar[str] = "anneal"
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
        n, m = q.num_variables, opts.num_reads
        if n == 0:
            return self.result(qubo, np.zeros((1, 0)), started=started, seed=seed)
        num_sweeps = opts.num_sweeps or min(1000, max(50, n))
        if fast.resolve_engine(opts.engine, self.name) == "numba":
            from qslm.qubo import fast_solvers

            run = fast_solvers.anneal(
                q,
                num_reads=m,
                num_sweeps=num_sweeps,
                beta_range=tuple(opts.beta_range) if opts.beta_range else None,
                polish=opts.polish,
                seed=seed,
                deadline=deadline,
                threads=opts.threads,
            )
            status = "timeout" if run.timed_out else "ok"
            return self.result(
                qubo, run.samples, started=started, seed=seed, status=status, info=run.info
            )
        check_numpy_size(self.name, n)
        w_orig = q.coupling_matrix()
        hot, cold = opts.beta_range or default_beta_range(q.linear, w_orig)
        order, bounds = color_classes(w_orig)
        w = np.ascontiguousarray(w_orig[np.ix_(order, order)])
        c = q.linear[order]
        ratio = (cold / hot) ** (1.0 / max(1, num_sweeps - 1))  # geometric schedule

        # Replicas are columns: (n, m) arrays make every colour class a contiguous row slice.
        # The sweep runs in float32 (half the memory traffic); the final descent and the
        # reported energies use float64.
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 2, size=(n, m)).astype(np.float32)
        w32 = w.astype(np.float32)
        g = c.astype(np.float32)[:, None] + w32 @ x  # flipping x_i changes energy by s_i g_i
        s = 1.0 - 2.0 * x
        cols = [(a, b, np.ascontiguousarray(w32[:, a:b])) for a, b in bounds]
        thresholds = np.empty((n, m), dtype=np.float32)
        status = "ok"
        sweeps = 0
        for sweep in range(num_sweeps):
            beta = hot * ratio**sweep
            if deadline.expired():
                status = "timeout"
                break
            # Metropolis: accept when delta <= -ln(u) / beta, u uniform (delta <= 0 always).
            rng.standard_exponential(out=thresholds, dtype=np.float32)
            thresholds *= np.float32(1.0 / beta)
            for a, b, wb in cols:
                ss = s[a:b]
                dx = (ss * g[a:b] <= thresholds[a:b]) * ss  # the change of x: +1, -1 or 0
                ss -= dx
                ss -= dx
                g += wb @ dx
            sweeps += 1
        s64 = s.T.astype(np.float64)
        if opts.polish:
            g64 = c + (s64 < 0) @ w
            steepest_descent(s64, g64, w)
        samples = np.empty((m, n), dtype=np.uint8)
        samples[:, order] = s64 < 0
        info = {
            "engine": "numpy",
            "num_reads": m,
            "sweeps": sweeps,
            "beta_range": [hot, cold],
            "colors": len(bounds),
        }
        return self.result(qubo, samples, started=started, seed=seed, status=status, info=info)
