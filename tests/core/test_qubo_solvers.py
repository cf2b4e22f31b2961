"""The built-in solvers: the conformance kit, known optima, limits and registration."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from qslm.qubo.anneal import AnnealSolver, color_classes
from qslm.qubo.exact import MAX_VARIABLES, ExactSolver
from qslm.qubo.io import read_qubo
from qslm.qubo.model import Qubo
from qslm.qubo.solver import ProblemTooLarge
from qslm.qubo.tabu import TabuSolver
from qslm.testing import SolverConformance, brute_force, random_qubo


class TestExactConformance(SolverConformance):
    solver = "exact"
    finds_optimum_up_to = 12
    long_running_options = {}  # 2^26 assignments take 0.2-0.5 s here: far over 0.02 s
    time_limit_s = 0.02


class TestAnnealConformance(SolverConformance):
    solver = "anneal"
    solver_options = {"engine": "numpy"}  # the numba engine: test_qubo_fast.py
    long_running_options = {"num_sweeps": 10**9}


class TestTabuConformance(SolverConformance):
    solver = "tabu"
    solver_options = {"engine": "numpy"}
    long_running_options = {"num_iterations": 10**9, "patience": 10**9}


@pytest.fixture
def bqp50_1(shared_dir):
    path = shared_dir / "benchmarks" / "qubo" / "bqp50_1.qubo"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    return read_qubo(path, sense="max")


@pytest.mark.parametrize("cls", [AnnealSolver, TabuSolver])
def test_finds_the_bqp50_1_optimum(bqp50_1, cls):
    result = cls().solve(bqp50_1, seed=0)
    assert result.best_energy == 2098  # best-known maximum (Beasley, OR-Library)
    assert bqp50_1.energy(result.best_sample) == 2098


def test_exact_matches_brute_force_on_harder_problems():
    for seed in range(3):
        q = random_qubo(14, density=0.8, seed=seed, offset=-3.0)
        best, _ = brute_force(q)
        assert ExactSolver().solve(q).best_energy == pytest.approx(best)


def test_exact_keeps_the_lowest_states_in_order():
    q = random_qubo(10, seed=4)
    result = ExactSolver(ExactSolver.Options(keep=5)).solve(q)
    from qslm.testing import all_assignments

    np.testing.assert_allclose(result.energies, np.sort(q.energies(all_assignments(10)))[:5])
    assert result.info["optimal"] is True


def test_exact_refuses_too_many_variables_naming_the_limit():
    q = Qubo(np.zeros(MAX_VARIABLES + 1))
    with pytest.raises(ProblemTooLarge, match=f"limit of {MAX_VARIABLES}.*'anneal'"):
        ExactSolver().solve(q)


@pytest.mark.parametrize("cls", [AnnealSolver, TabuSolver])
def test_solvers_refuse_problems_over_their_limit(cls):
    limit = cls.capabilities.max_variables
    from scipy import sparse

    q = Qubo(np.zeros(limit + 1), sparse.csr_array((limit + 1, limit + 1)))
    with pytest.raises(ProblemTooLarge, match=str(limit)):
        cls().solve(q)


@pytest.mark.parametrize(
    ("solver", "limit"),
    [
        # The numpy engines; the numba ones pass the same check in the conformance kit
        # (test_qubo_fast.py), once their kernels are loaded.
        (AnnealSolver(AnnealSolver.Options(num_sweeps=10**9, engine="numpy")), 0.2),
        (
            TabuSolver(TabuSolver.Options(num_iterations=10**9, patience=10**9, engine="numpy")),
            0.2,
        ),
    ],
)
def test_time_limit_returns_best_so_far(solver, limit):
    q = random_qubo(200, density=0.2, seed=1)
    result = solver.solve(q, seed=0, time_limit=limit)
    assert result.status == "timeout"
    assert result.wall_s < limit + 0.5
    assert result.best_energy < 0  # a descended state, not an unsolved zero vector


def test_option_time_limit_counts_too():
    solver = AnnealSolver(AnnealSolver.Options(num_sweeps=10**9, time_limit=0.1, engine="numpy"))
    result = solver.solve(random_qubo(100, seed=2), seed=0)
    assert result.status == "timeout" and result.wall_s < 0.6


def test_same_seed_same_answer_different_seed_recorded():
    q = random_qubo(60, seed=5)
    for cls in (AnnealSolver, TabuSolver):
        a, b = cls().solve(q, seed=11), cls().solve(q, seed=11)
        np.testing.assert_array_equal(a.samples, b.samples)
        fresh = cls().solve(q)
        assert isinstance(fresh.seed, int)


def test_color_classes_are_independent_sets():
    q = random_qubo(80, density=0.2, seed=3)
    w = q.coupling_matrix()
    order, bounds = color_classes(w)
    assert sorted(order.tolist()) == list(range(80))
    for a, b in bounds:
        members = order[a:b]
        assert not w[np.ix_(members, members)].any()
    assert bounds[0][0] == 0 and bounds[-1][1] == 80


def test_anneal_beta_range_option_is_validated():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        AnnealSolver.Options(beta_range=[2.0, 1.0])
    result = AnnealSolver(AnnealSolver.Options(beta_range=[0.1, 10.0])).solve(
        random_qubo(10, seed=0), seed=0
    )
    assert result.info["beta_range"] == [0.1, 10.0]


def test_registration_imports_no_solver_module():
    code = (
        "import sys\n"
        "from qslm.plugins import get_registry\n"
        "r = get_registry()\n"
        "names = sorted(r.components['qubo_solver'])\n"
        "heavy = [m for m in ('scipy', 'dimod', 'qslm.qubo.anneal', 'qslm.qubo.tabu',\n"
        "         'qslm.qubo.exact', 'qslm.qubo.model') if m in sys.modules]\n"
        "print(names, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "'anneal'" in out and "'exact'" in out and "'tabu'" in out
    assert out.strip().endswith("[]"), out
