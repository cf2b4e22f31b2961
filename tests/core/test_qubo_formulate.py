"""Constraint penalties never pay, answers are checked and repaired honestly, and the module
selection QUBO finds the known best choice."""

from __future__ import annotations

import numpy as np
import pytest

from qslm.errors import QslmError
from qslm.plugins import get_registry
from qslm.qubo.formulate import AtMost, ExactlyK, OneHot, constrain
from qslm.qubo.model import Qubo
from qslm.qubo.modules import module_selection
from qslm.qubo.portfolio import solve_with_fallback
from qslm.qubo.solver import Capabilities, QuboSolver
from qslm.testing import all_assignments, brute_force, random_qubo


def constrained_optimum(cq):
    """Best objective over the feasible decision assignments, by enumeration."""
    x = all_assignments(cq.num_decision)
    ok = np.array([cq.check(row) for row in x])
    e = cq.objective.energies(x[ok])
    return e.max() if cq.objective.sense == "max" else e.min()


def assert_penalty_never_pays(cq):
    energy, best = brute_force(cq.qubo)
    assert cq.check(best), f"penalised optimum is infeasible: {cq.violations(best)}"
    assert np.isclose(cq.objective_value(best), constrained_optimum(cq))
    assert np.isclose(energy, cq.objective_value(best))  # its slack bits are exact too


@pytest.mark.parametrize("sense", ["min", "max"])
@pytest.mark.parametrize("seed", range(12))
def test_exactly_k_penalty_never_pays(seed, sense):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 10))
    obj = random_qubo(n, seed=seed, sense=sense, density=0.7)
    cq = constrain(obj, [ExactlyK(int(rng.integers(0, n + 1)))])
    assert cq.bound == "per-constraint"
    assert_penalty_never_pays(cq)


@pytest.mark.parametrize("sense", ["min", "max"])
@pytest.mark.parametrize("seed", range(12))
def test_budget_penalty_never_pays(seed, sense):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(3, 8))
    weights = rng.integers(0, 7, size=n)
    obj = random_qubo(n, seed=seed, sense=sense)
    cq = constrain(obj, [AtMost(weights, int(rng.integers(0, weights.sum() + 1)))])
    assert cq.qubo.num_variables == n + cq.constraints[0].num_slack
    assert_penalty_never_pays(cq)


@pytest.mark.parametrize("seed", range(8))
def test_one_hot_groups_and_overlapping_constraints_never_pay(seed):
    obj = random_qubo(8, seed=seed, density=0.8)
    groups = [OneHot([0, 1, 2]), OneHot([3, 4]), ExactlyK(2, [5, 6, 7])]
    disjoint = constrain(obj, groups)
    assert disjoint.bound == "per-constraint"
    assert_penalty_never_pays(disjoint)
    # A budget over all variables overlaps the groups: the objective-range bound applies.
    overlapping = constrain(obj, [*groups, AtMost([1, 2, 1, 3, 1, 2, 1, 1], 5)])
    assert overlapping.bound == "objective-range"
    assert_penalty_never_pays(overlapping)


def test_real_weights_are_rounded_conservatively():
    # In units of 0.1 the weights round up (5, 5, 3) and the budget down (9): the penalised
    # problem never accepts an over-budget choice, and refuses {0, 1}, which fits only exactly.
    obj = Qubo([-1.0, -1.0, -0.5])
    cq = constrain(obj, [AtMost([0.45, 0.45, 0.3], 0.9, unit=0.1)])
    assert cq.check([1, 1, 0])  # the exact weights fit
    _, best = brute_force(cq.qubo)
    assert cq.check(best)
    assert cq.objective_value(best) == -1.5


def test_budget_unit_defaults_to_the_gcd_or_caps_the_slack_bits():
    assert AtMost([3000, 6000, 9000], 12000).unit == 3000
    many = AtMost([1, 2, 3], 10**6)
    assert many.num_slack <= 11 and many.unit == pytest.approx(10**6 / 1024)


def test_exactly_k_repair_keeps_the_best_marginal_choices():
    obj = Qubo([5.0, 1.0, 4.0, 2.0, 3.0], sense="max")
    cq = constrain(obj, [ExactlyK(2)])
    assert cq.repair([1, 1, 1, 1, 1]).tolist() == [1, 0, 1, 0, 0]  # removes the weakest
    assert cq.repair([0, 0, 0, 0, 0]).tolist() == [1, 0, 1, 0, 0]  # adds the strongest


def test_repair_accounts_for_pair_terms():
    # x0 and x1 are each valuable but worth little together: adding picks x2 after x0.
    obj = Qubo([3.0, 2.9, 2.0], [[0, -5.0, 0], [0, 0, 0], [0, 0, 0]], sense="max")
    cq = constrain(obj, [ExactlyK(2)])
    assert cq.repair([1, 0, 0]).tolist() == [1, 0, 1]


def test_budget_repair_drops_the_worst_value_per_weight():
    obj = Qubo([6.0, 5.0, 1.0, 4.0], sense="max")
    cq = constrain(obj, [AtMost([3, 1, 1, 4], 5)])
    # Chosen all: weight 9 > 5. Ratios 2, 5, 1, 1: drop x2 (ratio 1, weight 1) -> 8, then x3.
    assert cq.repair([1, 1, 1, 1]).tolist() == [1, 1, 0, 0]


def test_one_hot_repair_picks_the_best_in_the_group():
    obj = Qubo([1.0, 3.0, 2.0, 0.5, 0.2], sense="max")
    cq = constrain(obj, [OneHot([0, 1, 2]), OneHot([3, 4])])
    assert cq.repair([1, 0, 1, 0, 0]).tolist() == [0, 1, 0, 1, 0]


def test_infeasible_answer_is_reported_not_passed_off():
    cq = constrain(Qubo([1.0, 2.0, 3.0], sense="max"), [ExactlyK(1)])
    out = cq.resolve([1, 1, 0])
    assert not out.solver_feasible and out.repaired and out.feasible
    assert out.violations == ["exactly_k: off by 1"]
    assert out.sample.tolist() == [0, 1, 0]
    ok = cq.resolve([0, 0, 1])
    assert ok.solver_feasible and not ok.repaired and ok.objective == 3.0


class _AllOnes(QuboSolver):
    capabilities = Capabilities(deterministic=True)
    name = "test.all-ones"

    def solve(self, qubo, *, seed=None, time_limit=None):
        import time

        return self.result(
            qubo, np.ones((1, qubo.num_variables)), started=time.perf_counter(), seed=seed
        )


def test_check_makes_the_portfolio_skip_infeasible_answers():
    cq = constrain(random_qubo(6, seed=2), [ExactlyK(3)])
    exact = get_registry().get("qubo_solver", "exact").load()()
    result, attempts = solve_with_fallback(
        cq.qubo, [("all-ones", _AllOnes()), ("exact", exact)], seed=0, check=cq.check
    )
    assert [a["status"] for a in attempts] == ["infeasible", "ok"]
    assert result.feasible and cq.check(result.best_sample)
    with pytest.raises(QslmError, match="infeasible"):
        solve_with_fallback(cq.qubo, [("all-ones", _AllOnes())], check=cq.check)


def test_constraint_arguments_are_validated():
    with pytest.raises(ValueError, match="exactly 4 of 3"):
        constrain(Qubo([0, 0, 0]), [ExactlyK(4)])
    with pytest.raises(ValueError, match="indices"):
        constrain(Qubo([0, 0]), [OneHot([0, 2])])
    with pytest.raises(ValueError, match="non-negative"):
        AtMost([1, -1], 3)


def test_module_selection_finds_the_known_best_choice():
    names = ["q0", "k0", "v0", "q1", "v1"]
    importance = [5.0, 4.0, 3.0, 4.5, 2.0]
    params = [4096, 4096, 2048, 4096, 2048]
    redundancy = np.zeros((5, 5))
    redundancy[0, 1] = redundancy[1, 0] = 3.5  # q0 and k0 carry much the same signal
    sel = module_selection(names, importance, params, 10240, redundancy)
    # Budget 10240 fits two big modules and one small one. Brute force over 32 choices:
    # {q0, q1, v0} scores 12.5, beating {q0, k0, v0} (12 - 3.5) and {q0, q1, v0, v1} (too big).
    exact = get_registry().get("qubo_solver", "exact").load()()
    choice = sel.decode(exact.solve(sel.qubo).best_sample)
    assert choice.names == ("q0", "v0", "q1")
    assert choice.params == 10240 and choice.feasible and not choice.repaired
    assert choice.objective == pytest.approx(12.5)
    assert sel.problem.constraints[0].unit == 2048  # the gcd: three slack bits, no rounding


def test_module_selection_decodes_over_budget_samples_honestly():
    sel = module_selection(["a", "b", "c"], [3.0, 2.0, 1.0], [5, 5, 5], 10)
    choice = sel.decode([1, 1, 1])
    assert choice.repaired and choice.feasible and choice.names == ("a", "b")
    assert not sel.check([1, 1, 1]) and sel.check([0, 1, 1])
