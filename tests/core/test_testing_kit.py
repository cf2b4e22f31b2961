"""The conformance kit passes a correct solver, fails broken ones with a clear message, and its
pytest plugin is cheap to load and gives working fixtures to a plugin author's test file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from qslm.qubo.solver import Capabilities, QuboSolver, resolve_seed
from qslm.testing import (
    check_empty,
    check_optimum,
    check_result,
    check_seeded,
    check_time_limit,
    check_too_large,
    random_qubo,
)

# The kit against the built-in solvers (exact, anneal, tabu) runs in test_qubo_solvers.py.


# --- solvers that break the contract in one way each ---------------------------------------


class RandomSearch(QuboSolver):
    """A correct, seeded random search; subclasses below break one thing each."""

    capabilities = Capabilities(max_variables=50)
    name = "test.random"

    def samples(self, qubo, rng):
        return rng.integers(0, 2, size=(64, qubo.num_variables))

    def solve(self, qubo, *, seed=None, time_limit=None):
        self.check_problem(qubo)
        started = time.perf_counter()
        seed = resolve_seed(seed)
        x = self.samples(qubo, np.random.default_rng(seed))
        return self.result(qubo, x, started=started, seed=seed)


class LiesAboutEnergies(RandomSearch):
    def solve(self, qubo, *, seed=None, time_limit=None):
        result = super().solve(qubo, seed=seed)
        result.energies = result.energies - 1.0
        return result


class IgnoresSeeds(RandomSearch):
    def samples(self, qubo, rng):
        return np.random.default_rng().integers(0, 2, size=(64, qubo.num_variables))


class IgnoresTimeLimit(RandomSearch):
    def solve(self, qubo, *, seed=None, time_limit=None):
        time.sleep((time_limit or 0) + 0.5)
        return super().solve(qubo, seed=seed)


class WorksBeforeRefusing(RandomSearch):
    def solve(self, qubo, *, seed=None, time_limit=None):
        qubo.as_min()
        return super().solve(qubo, seed=seed)


class AlwaysMinimises(RandomSearch):
    def solve(self, qubo, *, seed=None, time_limit=None):
        return super().solve(qubo.with_sense("min"), seed=seed)


class ReturnsNothingForEmpty(RandomSearch):
    def samples(self, qubo, rng):
        if qubo.num_variables == 0:
            return np.zeros((0, 0))
        return super().samples(qubo, rng)


def test_a_correct_solver_passes():
    solver = RandomSearch()
    check_optimum(solver, [2, 4])
    check_seeded(solver)
    check_empty(solver)
    check_too_large(solver)


@pytest.mark.parametrize(
    ("solver", "check", "message"),
    [
        (LiesAboutEnergies(), lambda s: check_optimum(s, [3]), "is not f\\(x\\)"),
        (IgnoresSeeds(), check_seeded, "seed=7 gave different samples"),
        (
            IgnoresTimeLimit(),
            lambda s: check_time_limit(s, n=5, limit=0.1, slack=0.2, must_time_out=False),
            "time_limit=0.1s but solve took",
        ),
        (WorksBeforeRefusing(), check_too_large, "call self.check_problem"),
        (AlwaysMinimises(), lambda s: check_optimum(s, [3]), "result.sense"),
        (ReturnsNothingForEmpty(), check_empty, "returned no sample"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, QuboSolver) else "",
)
def test_a_broken_solver_fails_with_a_clear_message(solver, check, message):
    with pytest.raises(AssertionError, match=message):
        check(solver)


def test_result_check_rejects_non_binary_samples():
    q = random_qubo(3)
    result = RandomSearch().solve(q, seed=0)
    result.samples = result.samples * 2
    with pytest.raises(AssertionError, match="only 0 and 1"):
        check_result(q, result, RandomSearch())


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.bool_])
def test_result_check_rejects_samples_that_are_not_uint8(dtype):
    # SolveResult documents (m, n) uint8 samples; 0.0/1.0 floats pass a 0-or-1 check.
    q = random_qubo(3)
    result = RandomSearch().solve(q, seed=0)
    result.samples = result.samples.astype(dtype)
    with pytest.raises(AssertionError, match="uint8"):
        check_result(q, result, RandomSearch())


def test_pytest_plugin_imports_nothing_heavy():
    code = (
        "import sys, qslm.testing.pytest_plugin\n"
        "heavy = [m for m in ('numpy', 'scipy', 'torch', 'pydantic') if m in sys.modules]\n"
        "sys.exit(f'imported: {heavy}' if heavy else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr or result.stdout


def test_a_plugin_author_test_file_runs_with_the_fixtures(tmp_path):
    (tmp_path / "test_author.py").write_text(
        textwrap.dedent(
            """
            from qslm.testing import SolverConformance


            class TestTabu(SolverConformance):
                solver = "tabu"
                finds_optimum_up_to = 4


            def test_fixtures(random_qubo, brute_force, qubo_solver):
                q = random_qubo(5, sense="max", seed=3)
                best, _ = brute_force(q)
                assert qubo_solver("exact").solve(q).best_energy == best
            """
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "9 passed" in result.stdout
