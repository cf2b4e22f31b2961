"""The example solver passes qslm's conformance kit and works by name in a pipeline."""

from __future__ import annotations

import numpy as np

from qslm.api import SolverConformance, brute_force, random_qubo
from qslm.config import load_pipeline
from qslm.plugins import get_registry


class TestGreedyConformance(SolverConformance):
    solver = "example.greedy"
    long_running_options = {"restarts": 10**9}


def test_registered_by_the_installed_distribution():
    spec = get_registry().get("qubo_solver", "example.greedy")
    assert spec.distribution == "qslm-example-greedy"


def test_every_sample_is_a_local_minimum():
    q = random_qubo(30, seed=4)
    result = get_registry().get("qubo_solver", "example.greedy").load()().solve(q, seed=1)
    for x in result.samples:
        flips = np.eye(30, dtype=np.uint8) ^ x
        assert (q.energies(flips) >= q.energy(x) - 1e-9).all()


def test_finds_the_optimum_of_small_problems_with_enough_restarts(qubo_solver):
    solver = qubo_solver("example.greedy", restarts=64)
    for seed in range(5):
        q = random_qubo(10, seed=seed)
        assert np.isclose(solver.solve(q, seed=0).best_energy, brute_force(q)[0])


def test_usable_by_name_in_a_pipeline(tmp_path):
    (tmp_path / "notes.md").write_text("One paragraph.\n\nAnother paragraph.\n", encoding="utf-8")
    (tmp_path / "pipeline.toml").write_text(
        '[pipeline]\nname = "greedy-demo"\n\n[data.options]\npaths = ["notes.md"]\n\n'
        '[select]\nsize = 1\nsolver = "example.greedy"\n\n'
        '[select.solvers."example.greedy"]\nrestarts = 8\n',
        encoding="utf-8",
    )
    config = load_pipeline(tmp_path / "pipeline.toml", get_registry())
    [ref] = config.select.solvers
    assert ref.spec.name == "example.greedy"
    assert ref.create().options.restarts == 8
