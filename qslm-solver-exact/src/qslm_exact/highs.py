"""``exact.highs``: the QUBO as a mixed-integer program on HiGHS, solved to a proven optimum
or stopped at the time limit with the best solution, a bound and the gap between them.

Linearisation (Glover and Woolsey's, on the minimisation form): each pair (i, j) with weight
w gets a continuous ``y_ij`` in [0, 1] standing for ``x_i x_j``. Only the side of the product
that the objective pushes against needs a constraint: for w > 0 the minimum wants y low, so
``y >= x_i + x_j - 1``; for w < 0 it wants y high, so ``y <= x_i`` and ``y <= x_j``. At any
integer x the best y is then exactly ``x_i x_j``, so the MIP's optimum is the QUBO's.

HiGHS was chosen over OR-Tools CP-SAT by measurement (docs/benchmarks/solvers.md): on bqp100_1 HiGHS
proved the optimum in 18 s on a busy 2-core machine, CP-SAT (same linearisation, 2 workers)
had a gap of 158% after 60 s. A short run of the core's ``tabu`` comes first (a
short run), so a stopped solve is never worse than the heuristic. That solution is not
handed to HiGHS (``setSolution``): with it HiGHS 1.16 reported a wrong objective (-2122, an
energy no solution has) and a false "Optimal" on bqp50_1, so the solver also checks that
HiGHS' objective is the QUBO energy of the solution it returns before it claims a proof.
"""

from __future__ import annotations

import math
import os
import sys
import time
from importlib import metadata
from typing import Any, ClassVar, Literal

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
)
from qslm_exact import __version__

PRESOLVE_MIN_S = 10.0  # seconds left below which presolve is off (see _run_highs)
MAX_VARIABLES = 2000  # one column per pair: a dense 2000-variable QUBO is a 2M-column MIP


def new_highs() -> Any:
    """A silent ``highspy.Highs``. Its first construction in a process prints a banner from
    C++ straight to file descriptor 1, which would corrupt ``qslm solve --json``: that one
    construction runs with descriptor 1 pointed at /dev/null."""
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    h.setOptionValue("output_flag", False)
    return h


def pairs(q: Qubo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The non-zero pair weights (i < j) of a Qubo: rows, cols, weights."""
    from scipy import sparse

    coo = sparse.coo_array(q.quadratic)
    keep = coo.data != 0
    return coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64), coo.data[keep]


def build_rows(n: int, i: np.ndarray, j: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """The linearisation's constraint rows in CSR form (lower, upper, starts, index, value)."""
    y = n + np.arange(w.size)
    pos, neg = w > 0, w < 0
    # w > 0:  y - x_i - x_j >= -1
    p_idx = np.stack([y[pos], i[pos], j[pos]], axis=1).reshape(-1)
    p_val = np.tile([1.0, -1.0, -1.0], int(pos.sum()))
    # w < 0:  y - x_i <= 0 and y - x_j <= 0
    n_idx = np.concatenate(
        [np.stack([y[neg], i[neg]], axis=1), np.stack([y[neg], j[neg]], axis=1)]
    ).reshape(-1)
    n_val = np.tile([1.0, -1.0], 2 * int(neg.sum()))
    num_pos, num_neg = int(pos.sum()), 2 * int(neg.sum())
    starts = np.concatenate([np.arange(num_pos) * 3, 3 * num_pos + np.arange(num_neg) * 2])
    return {
        "lower": np.concatenate([np.full(num_pos, -1.0), np.full(num_neg, -np.inf)]),
        "upper": np.concatenate([np.full(num_pos, np.inf), np.zeros(num_neg)]),
        "starts": starts.astype(np.int32),
        "index": np.concatenate([p_idx, n_idx]).astype(np.int32),
        "value": np.concatenate([p_val, n_val]),
    }


class HighsSolver(QuboSolver):
    """A MIP on HiGHS: the optimum with a proof, or the best found with bound and gap."""

    class Options(Options):
        time_limit: float | None = Field(default=None, gt=0)
        mip_rel_gap: float = Field(
            default=0.0,
            ge=0,
            description=(
                "Stop once the relative gap between the best solution and the bound is this"
                " small; 0 proves the optimum (HiGHS' own default, 1e-4, would stop "
                "earlier)."
            ),
        )
        warm_start: bool = Field(
            default=True,
            description=(
                "Run the core's tabu search briefly first; its solution is returned when "
                "HiGHS has nothing better at the time limit."
            ),
        )
        presolve: Literal["auto", "on", "off"] = Field(
            default="auto",
            description=(
                "HiGHS' presolve; auto: on unless less than 10 s are left (HiGHS' presolve does "
                "not stop at the time limit)."
            ),
        )

    capabilities: ClassVar[Capabilities] = Capabilities(
        max_variables=MAX_VARIABLES, deterministic=True
    )
    name: ClassVar[str] = "exact.highs"
    version: ClassVar[str] = __version__
    too_large_hint: ClassVar[str] = "use 'tabu' or 'anneal' for larger problems"

    def solve(
        self, qubo: Qubo, *, seed: int | None = None, time_limit: float | None = None
    ) -> SolveResult:
        self.check_problem(qubo)
        started = time.perf_counter()
        deadline = Deadline(effective_time_limit(self.options.time_limit, time_limit), started)
        q = qubo.as_min()
        n = q.num_variables
        if n == 0:
            info = {"optimal": True, "bound": qubo.offset, "gap": 0.0}
            return self.result(qubo, np.zeros((1, 0)), started=started, seed=seed, info=info)
        start = self._warm_start(q, deadline) if self.options.warm_start else None
        x, outcome = self._run_highs(q, start, deadline)
        bound_min = outcome.pop("bound_min")
        best_min = float(q.energy(x))
        sign = 1.0 if qubo.sense == "min" else -1.0
        outcome.update(
            bound=sign * bound_min,
            gap=max(0.0, best_min - bound_min) / max(abs(best_min), 1e-9),
            library=f"highspy {metadata.version('highspy')}",
        )
        if start is not None:
            outcome["warm_start_energy"] = sign * float(q.energy(start))
        status = "timeout" if outcome.pop("timed_out") else "ok"
        return self.result(
            qubo, x[None, :], started=started, seed=seed, status=status, info=outcome
        )

    @staticmethod
    def _warm_start(q: Qubo, deadline: Deadline) -> np.ndarray:
        from qslm.qubo.tabu import TabuSolver

        # A short run: a tenth of the time left, at most a second; seed 0 and the numpy engine,
        # so the start is the same whether numba is installed or not (and no numba import).
        left = deadline.remaining()
        budget = min(1.0, left / 10) if math.isfinite(left) else 1.0
        result = TabuSolver(TabuSolver.Options(num_chains=4, engine="numpy")).solve(
            q, seed=0, time_limit=max(budget, 1e-3)
        )
        return result.best_sample.astype(np.float64)

    def _run_highs(
        self, q: Qubo, start: np.ndarray | None, deadline: Deadline
    ) -> tuple[np.ndarray, dict[str, Any]]:
        import highspy

        n = q.num_variables
        i, j, w = pairs(q)
        h = new_highs()
        h.setOptionValue("mip_rel_gap", float(self.options.mip_rel_gap))
        # No "threads" option: HiGHS fixes its thread pool at the first run in a process and
        # refuses to run (status "Not Set") when a later instance asks for another size.
        left = deadline.remaining()
        if math.isfinite(left):
            h.setOptionValue("time_limit", max(left, 1e-3))
        presolve = self.options.presolve
        if presolve == "auto":
            # HiGHS' presolve does not look at the time limit: on 300 variables with 13k pair
            # terms it ran 1.7 s past a 0.3 s limit (0.05 s with presolve off). It helps the
            # proofs, so it stays on when there is time for it.
            presolve = "on" if left >= PRESOLVE_MIN_S else "off"
        h.setOptionValue("presolve", presolve)
        ncol = n + w.size
        lower, upper = np.zeros(ncol), np.ones(ncol)
        cost = np.concatenate([q.linear, w])
        empty = np.zeros(0, dtype=np.int32)
        h.addCols(ncol, cost, lower, upper, 0, np.zeros(ncol, np.int32), empty, np.zeros(0))
        h.changeColsIntegrality(
            n, np.arange(n, dtype=np.int32), np.array([highspy.HighsVarType.kInteger] * n)
        )
        r = build_rows(n, i, j, w)
        if r["starts"].size:
            h.addRows(
                r["starts"].size, r["lower"], r["upper"], r["index"].size,
                r["starts"], r["index"], r["value"],
            )  # fmt: skip
        h.run()
        status = h.getModelStatus()
        info = h.getInfo()
        values = np.asarray(h.getSolution().col_value)
        x = np.zeros(n, dtype=np.uint8)
        consistent = False
        if values.size >= n and info.primal_solution_status == 2:  # kSolutionStatusFeasible
            x = (values[:n] > 0.5).astype(np.uint8)
            # HiGHS' objective must be the QUBO energy of its solution; a proof is trusted
            # only then.
            reported = info.objective_function_value
            consistent = abs(float(q.energy(x)) - q.offset - reported) <= 1e-6 * max(
                1.0, abs(reported)
            )
        if start is not None and (
            not consistent or q.energy(start) < q.energy(x)
        ):  # the heuristic's solution is better than HiGHS' (stopped early): return it
            x = start.astype(np.uint8)
        best = float(q.energy(x)) - q.offset
        bound = info.mip_dual_bound if math.isfinite(info.mip_dual_bound) else -math.inf
        # Every negative weight counted, no positive one: a bound HiGHS may not yet beat.
        trivial = float(np.minimum(q.linear, 0).sum() + np.minimum(w, 0).sum())
        bound = min(max(bound, trivial), best)
        # "Optimal" to HiGHS means within mip_rel_gap; a proof means no gap at all.
        optimal = (
            consistent
            and status == highspy.HighsModelStatus.kOptimal
            and best - bound <= 1e-6 * max(1.0, abs(best))
        )
        return x, {
            "optimal": bool(optimal),
            "bound_min": (best if optimal else bound) + q.offset,
            "highs_status": h.modelStatusToString(status),
            "timed_out": status == highspy.HighsModelStatus.kTimeLimit,
            "nodes": int(info.mip_node_count),
        }
