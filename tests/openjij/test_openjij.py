"""qslm-solver-openjij: OpenJij's SA and SQA pass the conformance kit and register through
their entry point."""

from __future__ import annotations

import pytest

from qslm.testing import (
    SolverConformance,
    brute_force,
    check_listing_is_light,
    check_plugin_listed,
    random_qubo,
)
from qslm_openjij.samplers import OpenJijSA, OpenJijSQA


class TestSAConformance(SolverConformance):
    solver = "openjij.sa"
    solver_options = {"num_reads": 8, "num_sweeps": 200}
    # ~2 ms a read on 300 variables: 10^5 reads take minutes unless the limit stops them.
    long_running_options = {"num_reads": 100_000}


class TestSQAConformance(SolverConformance):
    solver = "openjij.sqa"
    solver_options = {"num_reads": 4, "num_sweeps": 100}
    long_running_options = {"num_reads": 100_000}


def test_plugin_is_found_through_its_entry_point():
    check_plugin_listed("openjij", "qslm-solver-openjij")


def test_listing_does_not_import_openjij():
    check_listing_is_light(heavy=("openjij", "dimod", "numpy"))


def test_labelled_problem_comes_back_in_the_qubos_order():
    labels = [f"v{i}" for i in reversed(range(14))]
    q = random_qubo(14, density=0.5, seed=2, sense="max", labels=labels)
    best, _ = brute_force(q)
    result = OpenJijSA(OpenJijSA.Options(num_reads=16)).solve(q, seed=5)
    assert result.best_energy == pytest.approx(best)
    assert result.info["num_reads"] == 16 and result.status == "ok"
    sqa = OpenJijSQA(OpenJijSQA.Options(num_reads=4, num_sweeps=300)).solve(q, seed=5)
    assert sqa.best_energy == pytest.approx(best)
