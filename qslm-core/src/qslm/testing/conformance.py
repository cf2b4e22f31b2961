"""Conformance checks for QUBO solver plugins.

Each ``check_*`` function takes a solver instance, raises ``AssertionError`` with a message a
solver author can act on, and needs no pytest. :class:`SolverConformance` runs them all as
inherited pytest tests::

    from qslm.testing import SolverConformance

    class TestMySolver(SolverConformance):
        solver = "mycompany.anneal"       # registered name, QuboSolver class or instance factory
        solver_options = {"num_reads": 16}
        long_running_options = {"num_sweeps": 10**7}   # so the time-limit test can bite
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from qslm.components import Options
from qslm.qubo.model import Qubo
from qslm.qubo.solver import Capabilities, ProblemTooLarge, QuboSolver, SolveResult
from qslm.testing.problems import brute_force, random_qubo

SolverTarget = str | type | Callable[[], QuboSolver] | QuboSolver


def make_solver(target: SolverTarget, options: dict[str, Any] | None = None) -> QuboSolver:
    """A solver from a registered name, a class (with ``options``), or a zero-argument factory."""
    if isinstance(target, QuboSolver):
        return target
    if isinstance(target, str):
        from qslm.plugins import get_registry

        cls = get_registry().get("qubo_solver", target).load()
    elif isinstance(target, type):
        cls = target
    elif callable(target):
        solver = target()
        assert isinstance(solver, QuboSolver), f"the factory returned {solver!r}, not a QuboSolver"
        return solver
    else:
        raise TypeError(f"solver must be a name, a class or a factory, got {target!r}")
    assert isinstance(cls, type) and issubclass(cls, QuboSolver), (
        f"{target!r} is {cls!r}, not a subclass of qslm.qubo.solver.QuboSolver"
    )
    return cls(cls.Options.model_validate(options or {}))


def _name(solver: QuboSolver) -> str:
    return solver.display_name


def check_protocol(solver: QuboSolver) -> None:
    """A QuboSolver with strict Options, Capabilities and a solve method."""
    assert isinstance(solver, QuboSolver), f"{solver!r} is not a QuboSolver"
    assert issubclass(type(solver).Options, Options), "Options must subclass qslm Options"
    caps = solver.capabilities
    assert isinstance(caps, Capabilities), f"capabilities must be a Capabilities, got {caps!r}"
    limit = caps.max_variables
    assert limit is None or (isinstance(limit, int) and limit > 0), (
        f"capabilities.max_variables must be None or a positive int, got {limit!r}"
    )
    assert isinstance(solver.display_name, str) and solver.display_name


def check_result(qubo: Qubo, result: Any, solver: QuboSolver) -> None:
    """The result's fields, shapes and types, energies re-scored from the samples, best first,
    and a JSON-safe ``to_dict``."""
    who = _name(solver)
    assert isinstance(result, SolveResult), f"{who}: solve returned {type(result).__name__}"
    n = qubo.num_variables
    x, e = result.samples, result.energies
    assert isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[1] == n, (
        f"{who}: samples must be an (m, {n}) array, got {getattr(x, 'shape', x)!r}"
    )
    assert x.shape[0] >= 1, f"{who}: returned no sample"
    assert x.dtype == np.uint8, (
        f"{who}: samples must be uint8 (SolveResult's contract), got {x.dtype}; build the "
        "result with self.result(qubo, samples, ...), which converts them"
    )
    assert np.isin(x, (0, 1)).all(), f"{who}: samples must hold only 0 and 1"
    assert isinstance(e, np.ndarray) and e.shape == (x.shape[0],), (
        f"{who}: energies must have one entry per sample, got shape {getattr(e, 'shape', e)}"
    )
    rescored = qubo.energies(x)
    worst = int(np.argmax(np.abs(rescored - e)))
    assert np.allclose(e, rescored, rtol=1e-6, atol=1e-6), (
        f"{who}: energy {e[worst]!r} of sample {worst} is not f(x) = {rescored[worst]!r} "
        "(energies are the objective as written, in the Qubo's sense, offset included)"
    )
    assert result.sense == qubo.sense, f"{who}: result.sense {result.sense!r} != {qubo.sense!r}"
    ordered = -e if qubo.sense == "max" else e
    assert np.all(np.diff(ordered) >= -1e-9), f"{who}: samples must be best first"
    assert result.status in ("ok", "timeout"), f"{who}: status {result.status!r}"
    assert isinstance(result.solver, str) and result.solver, f"{who}: result.solver is empty"
    assert "wall_s" in result.timings, f"{who}: timings must include wall_s"
    json.dumps(result.to_dict())


def check_optimum(solver: QuboSolver, sizes: list[int], *, seed: int = 0) -> None:
    """Finds the brute-force optimum of random problems of the given sizes, in both senses,
    with an offset."""
    for n in sizes:
        for sense in ("min", "max"):
            q = random_qubo(n, sense=sense, seed=seed + n, offset=0.75)
            result = solver.solve(q, seed=seed)
            check_result(q, result, solver)
            best, _ = brute_force(q)
            assert np.isclose(result.best_energy, best, atol=1e-6), (
                f"{_name(solver)}: on a {n}-variable random problem (sense {sense}) the best "
                f"energy is {best}, the solver returned {result.best_energy}"
            )


def check_empty(solver: QuboSolver) -> None:
    """No variables: one empty sample whose energy is the offset."""
    q = Qubo([], offset=1.5)
    result = solver.solve(q, seed=0)
    check_result(q, result, solver)
    assert result.best_energy == 1.5, f"{_name(solver)}: empty problem energy must be the offset"


def check_one_variable(solver: QuboSolver) -> None:
    """One variable, both signs, both senses: the right value and energy."""
    for weight in (2.0, -2.0):
        for sense in ("min", "max"):
            q = Qubo([weight], offset=-0.5, sense=sense)
            result = solver.solve(q, seed=0)
            check_result(q, result, solver)
            want = int((weight < 0) == (sense == "min"))
            assert int(result.best_sample[0]) == want, (
                f"{_name(solver)}: for f(x) = {weight} x - 0.5, sense {sense}, the best x is "
                f"{want}, got {int(result.best_sample[0])}"
            )


def _same(a: SolveResult, b: SolveResult) -> bool:
    return a.samples.shape == b.samples.shape and bool(
        np.array_equal(a.samples, b.samples) and np.allclose(a.energies, b.energies)
    )


def check_seeded(solver: QuboSolver, *, n: int = 20) -> None:
    """The same seed gives the same samples; without a seed the one used is recorded and
    repeats the run (deterministic solvers: the same answer without any seed)."""
    q = random_qubo(n, seed=3)
    who = _name(solver)
    assert _same(solver.solve(q, seed=7), solver.solve(q, seed=7)), (
        f"{who}: two runs with seed=7 gave different samples"
    )
    first = solver.solve(q)
    if solver.capabilities.deterministic:
        assert _same(first, solver.solve(q)), f"{who}: declared deterministic, runs differ"
        return
    assert isinstance(first.seed, int | np.integer), (
        f"{who}: with seed=None the seed used must be recorded in result.seed, got {first.seed!r}"
    )
    assert _same(first, solver.solve(q, seed=int(first.seed))), (
        f"{who}: rerunning with the recorded seed {first.seed} gave different samples"
    )


def check_time_limit(
    solver: QuboSolver, *, n: int, limit: float, slack: float, must_time_out: bool
) -> float:
    """Returns within ``limit + slack`` seconds with a sample (status "timeout" when
    ``must_time_out``: the solver was configured to run far longer). Returns the wall time."""
    q = random_qubo(n, density=0.3, seed=5)
    started = time.perf_counter()
    result = solver.solve(q, seed=0, time_limit=limit)
    wall = time.perf_counter() - started
    who = _name(solver)
    assert wall <= limit + slack, f"{who}: time_limit={limit}s but solve took {wall:.2f}s"
    check_result(q, result, solver)
    if must_time_out:
        assert result.status == "timeout", (
            f"{who}: stopped by the time limit, status must be 'timeout', got {result.status!r}"
        )
    return wall


class _Untouchable(Qubo):
    """A Qubo whose contents raise when read: refusing it must need only num_variables."""

    def _touched(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(
            "the solver read a problem larger than capabilities.max_variables before refusing "
            "it; call self.check_problem(qubo) first in solve()"
        )

    as_min = coupling_matrix = dense_quadratic = energies = to_ising = to_bqm = _touched


def check_too_large(solver: QuboSolver) -> None:
    """A problem over ``max_variables`` raises ProblemTooLarge before any work."""
    limit = solver.capabilities.max_variables
    assert limit is not None, "the solver declares no max_variables"
    from scipy import sparse

    q = _Untouchable(np.zeros(limit + 1), sparse.csr_array((limit + 1, limit + 1)))
    started = time.perf_counter()
    try:
        solver.solve(q, seed=0)
    except ProblemTooLarge:
        pass
    else:
        raise AssertionError(f"{_name(solver)}: solved {limit + 1} variables over its limit")
    assert time.perf_counter() - started < 1.0, "refusing must be immediate"


class SolverConformance:
    """Inherit in a ``Test*`` class and set :attr:`solver`; every ``test_*`` method here runs
    against it. Override the attributes below to fit the solver."""

    solver: ClassVar[SolverTarget | None] = None
    """Registered name, QuboSolver subclass (built with :attr:`solver_options`) or factory."""
    solver_options: ClassVar[dict[str, Any]] = {}
    finds_optimum_up_to: ClassVar[int] = 8
    """Random problems of up to this many variables must be solved to optimality (0: skip)."""
    long_running_options: ClassVar[dict[str, Any] | None] = None
    """Options that make the solver run far past ``time_limit_s`` unless stopped; with them the
    time-limit test requires status "timeout". None: only the wall time is checked."""
    time_limit_s: ClassVar[float] = 0.3
    time_limit_slack_s: ClassVar[float] = 1.0
    time_limit_variables: ClassVar[int] = 300
    seeded_variables: ClassVar[int] = 20
    """Size of the problem the seed test solves (capped at ``max_variables``)."""
    reproducible: ClassVar[bool | None] = None
    """Whether seeds reproduce runs; None: yes unless the solver is remote."""

    def make_solver(self, **options: Any) -> QuboSolver:
        target = self.solver
        if target is None:
            raise TypeError(f"{type(self).__name__}: set `solver = ...` on the class")
        if options and not isinstance(target, str | type):
            raise TypeError("extra options need `solver` to be a name or a class")
        return make_solver(target, {**self.solver_options, **options})

    def test_protocol(self) -> None:
        check_protocol(self.make_solver())

    def test_result_and_energies(self) -> None:
        solver = self.make_solver()
        for sense in ("min", "max"):
            q = random_qubo(
                12, sense=sense, seed=1, offset=2.0, labels=[f"v{i}" for i in range(12)]
            )
            check_result(q, solver.solve(q, seed=0), solver)

    def test_finds_optimum_both_senses(self) -> None:
        if self.finds_optimum_up_to < 1:
            import pytest

            pytest.skip("finds_optimum_up_to = 0")
        up = self.finds_optimum_up_to
        check_optimum(self.make_solver(), sorted({2, max(2, up // 2), up}))

    def test_empty_problem(self) -> None:
        check_empty(self.make_solver())

    def test_one_variable(self) -> None:
        check_one_variable(self.make_solver())

    def test_seeds_reproduce(self) -> None:
        solver = self.make_solver()
        repro = self.reproducible
        if repro is None:
            repro = not solver.capabilities.remote
        if not repro:
            import pytest

            pytest.skip("declared not reproducible")
        limit = solver.capabilities.max_variables
        check_seeded(solver, n=min(self.seeded_variables, limit or self.seeded_variables))

    def test_time_limit(self) -> None:
        opts = self.long_running_options
        solver = self.make_solver(**(opts or {}))
        limit = solver.capabilities.max_variables
        n = min(self.time_limit_variables, limit or self.time_limit_variables)
        check_time_limit(
            solver,
            n=n,
            limit=self.time_limit_s,
            slack=self.time_limit_slack_s,
            must_time_out=opts is not None,
        )

    def test_too_large_refused(self) -> None:
        solver = self.make_solver()
        if solver.capabilities.max_variables is None:
            import pytest

            pytest.skip("no max_variables declared")
        check_too_large(solver)
