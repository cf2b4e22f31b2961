"""Running several solvers on one problem: in order until one succeeds, or all at once.

An attempt fails when its solver raises, stops at the time limit with no sample, returns no
sample, or (given a ``check``) returns no feasible sample. Every attempt is recorded as
``{"solver", "status", "reason", "wall_s", "energy"}``; a solver's exception becomes a recorded
failure, never a crash, and only when every attempt fails is a :class:`QslmError` raised,
listing each one's reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from qslm.errors import QslmError
from qslm.qubo.solver import ProblemTooLarge

if TYPE_CHECKING:
    from qslm.qubo.model import Qubo
    from qslm.qubo.solver import QuboSolver, SolveResult

Check = Callable[[np.ndarray], bool]
Attempt = dict[str, Any]


def _attempt(
    qubo: Qubo,
    name: str,
    solver: QuboSolver,
    seed: int | None,
    time_limit: float | None,
    check: Check | None,
) -> tuple[SolveResult | None, Attempt]:
    started = time.perf_counter()
    record: Attempt = {
        "solver": name,
        "status": "error",
        "reason": "",
        "wall_s": 0.0,
        "energy": None,
    }
    result = None
    try:
        solver.check_problem(qubo)
        result = solver.solve(qubo, seed=seed, time_limit=time_limit)
    except Exception as exc:  # any solver failure is recorded; the next solver gets its turn
        record["reason"] = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ProblemTooLarge):
            record["status"] = "too_large"
    record["wall_s"] = round(time.perf_counter() - started, 6)
    if result is None:
        return None, record
    result = replace(result, solver=name)
    record["status"] = result.status
    if result.num_samples == 0:
        record["status"] = "timeout" if result.status == "timeout" else "empty"
        record["reason"] = (
            "stopped at the time limit with no sample"
            if result.status == "timeout"
            else "returned no sample"
        )
        return None, record
    if check is not None:
        result = _keep_feasible(result, check)
        if result is None:
            record["status"] = "infeasible"
            record["reason"] = "no feasible sample among those returned"
            return None, record
    record["energy"] = result.best_energy
    if result.status != "ok":
        record["reason"] = f"status {result.status}; best sample so far used"
    return result, record


def _keep_feasible(result: SolveResult, check: Check) -> SolveResult | None:
    ok = np.array([bool(check(x)) for x in result.samples], dtype=bool)
    if not ok.any():
        return None
    # Feasible samples first (they stay in energy order), so best_sample is the best feasible.
    order = np.concatenate([np.flatnonzero(ok), np.flatnonzero(~ok)])
    info = {**result.info, "feasible_samples": int(ok.sum())}
    return replace(
        result,
        samples=result.samples[order],
        energies=result.energies[order],
        feasible=True,
        info=info,
    )


class AllSolversFailed(QslmError):
    """Every solver of a fallback chain or race failed; ``attempts`` says how each did."""

    def __init__(self, attempts: list[Attempt]) -> None:
        lines = "\n".join(f"  {a['solver']}: {a['status']}: {a['reason']}" for a in attempts)
        super().__init__(f"every QUBO solver failed ({len(attempts)} tried):\n{lines}")
        self.attempts = attempts


def _all_failed(attempts: list[Attempt]) -> QslmError:
    return AllSolversFailed(attempts)


def failure_lines(attempts: Sequence[Attempt], used: str) -> list[str]:
    """One progress line per failed attempt: which solver, how it failed, and what ``used``
    (the solver whose answer is kept, or the repair) stands in for it."""
    return [
        f"  solver {a['solver']!r} failed ({a['status']}: {a['reason']}); using {used}"
        if a.get("solver")
        else f"  solvers failed ({a['reason']}); using {used}"
        for a in attempts
        if a.get("energy") is None
    ]


def solve_with_fallback(
    qubo: Qubo,
    solvers: Sequence[tuple[str, QuboSolver]],
    *,
    seed: int | None = None,
    time_limit: float | None = None,
    check: Check | None = None,
) -> tuple[SolveResult, list[Attempt]]:
    """Try ``solvers`` in order; return the first good result and every attempt so far.

    ``time_limit`` applies to each attempt. ``check(sample) -> bool`` tells whether a 0/1
    sample is feasible; the result then has ``feasible=True`` and its best feasible sample
    first. Raises :class:`QslmError` listing every attempt when all fail.
    """
    if not solvers:
        raise QslmError("no QUBO solver to try")
    attempts: list[Attempt] = []
    for name, solver in solvers:
        result, record = _attempt(qubo, name, solver, seed, time_limit, check)
        attempts.append(record)
        if result is not None:
            return result, attempts
    raise _all_failed(attempts)


def solve_race(
    qubo: Qubo,
    solvers: Sequence[tuple[str, QuboSolver]],
    *,
    seed: int | None = None,
    time_limit: float | None = None,
    check: Check | None = None,
) -> tuple[SolveResult, list[Attempt]]:
    """Run ``solvers`` at once in threads and keep the best good result (ties: the earlier
    solver in the list). Numpy and remote solvers release the GIL while they work, so this
    helps most with remote services or a mix of fast and slow solvers."""
    if not solvers:
        raise QslmError("no QUBO solver to try")
    with ThreadPoolExecutor(max_workers=len(solvers), thread_name_prefix="qslm-race") as pool:
        futures = [
            pool.submit(_attempt, qubo, name, solver, seed, time_limit, check)
            for name, solver in solvers
        ]
        outcomes = [f.result() for f in futures]
    attempts = [record for _, record in outcomes]
    good = [r for r, _ in outcomes if r is not None]
    if not good:
        raise _all_failed(attempts)
    sign = -1.0 if qubo.sense == "max" else 1.0
    best = min(good, key=lambda r: sign * r.best_energy)
    return best, attempts
