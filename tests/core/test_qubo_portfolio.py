"""Fallback and race: order, recorded reasons, feasibility checks, and the all-failed error."""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
import pytest

from qslm.errors import QslmError
from qslm.qubo.anneal import AnnealSolver
from qslm.qubo.exact import ExactSolver
from qslm.qubo.model import Qubo
from qslm.qubo.portfolio import solve_race, solve_with_fallback
from qslm.qubo.solver import Capabilities, QuboSolver
from qslm.testing import brute_force, random_qubo


class Broken(QuboSolver):
    def solve(self, qubo, *, seed=None, time_limit=None):
        raise RuntimeError("service unavailable")


class TimesOutEmpty(QuboSolver):
    def solve(self, qubo, *, seed=None, time_limit=None):
        started = time.perf_counter()
        r = self.result(
            qubo, np.zeros((0, qubo.num_variables)), started=started, seed=seed, status="timeout"
        )
        return r


class Tiny(QuboSolver):
    capabilities: ClassVar[Capabilities] = Capabilities(max_variables=3)

    def solve(self, qubo, *, seed=None, time_limit=None):  # pragma: no cover - refused first
        raise AssertionError("a too-large problem must be refused before solve")


class AllZeros(QuboSolver):
    def solve(self, qubo, *, seed=None, time_limit=None):
        return self.result(
            qubo, np.zeros((1, qubo.num_variables)), started=time.perf_counter(), seed=seed
        )


@pytest.fixture
def qubo() -> Qubo:
    return random_qubo(10, seed=2)


def test_falls_back_in_order_and_records_every_reason(qubo):
    chain = [
        ("tiny", Tiny()),
        ("broken", Broken()),
        ("empty", TimesOutEmpty()),
        ("exact", ExactSolver()),
        ("anneal", AnnealSolver()),
    ]
    result, attempts = solve_with_fallback(qubo, chain, seed=0)
    assert [a["solver"] for a in attempts] == ["tiny", "broken", "empty", "exact"]
    assert [a["status"] for a in attempts] == ["too_large", "error", "timeout", "ok"]
    assert "more than its limit of 3" in attempts[0]["reason"]
    assert attempts[1]["reason"] == "RuntimeError: service unavailable"
    assert "no sample" in attempts[2]["reason"]
    assert attempts[3]["energy"] == pytest.approx(brute_force(qubo)[0])
    assert all(a["wall_s"] >= 0 for a in attempts)
    assert result.solver == "exact"


def test_check_rejects_infeasible_answers_and_reorders_feasible_first(qubo):
    def at_least_two(x):
        return x.sum() >= 2

    result, attempts = solve_with_fallback(
        qubo,
        [("zeros", AllZeros()), ("exact", ExactSolver(ExactSolver.Options(keep=50)))],
        check=at_least_two,
    )
    assert attempts[0]["status"] == "infeasible"
    assert result.feasible is True and result.best_sample.sum() >= 2
    feasible = [e for x, e in zip(result.samples, result.energies, strict=True) if x.sum() >= 2]
    assert result.best_energy == min(feasible)


def test_all_failing_raises_listing_each_attempt(qubo):
    with pytest.raises(QslmError) as info:
        solve_with_fallback(qubo, [("broken", Broken()), ("empty", TimesOutEmpty())])
    text = str(info.value)
    assert "every QUBO solver failed (2 tried)" in text
    assert "broken: error: RuntimeError: service unavailable" in text
    assert "empty: timeout" in text


def test_race_keeps_the_best_good_result():
    q = random_qubo(12, seed=1, sense="max")
    result, attempts = solve_race(
        q, [("zeros", AllZeros()), ("broken", Broken()), ("exact", ExactSolver())], seed=0
    )
    assert result.solver == "exact"
    assert result.best_energy == pytest.approx(brute_force(q)[0])
    assert {a["solver"]: a["status"] for a in attempts} == {
        "zeros": "ok",
        "broken": "error",
        "exact": "ok",
    }
