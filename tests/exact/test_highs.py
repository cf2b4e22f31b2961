"""qslm-solver-exact: the HiGHS MIP passes the conformance kit, proves optima that brute force
confirms, and reports a bound and gap when stopped early."""

from __future__ import annotations

import numpy as np
import pytest

from qslm.qubo.io import read_qubo
from qslm.testing import (
    SolverConformance,
    brute_force,
    check_listing_is_light,
    check_plugin_listed,
    random_qubo,
)
from qslm_exact.highs import HighsSolver


class TestHighsConformance(SolverConformance):
    solver = "exact.highs"
    finds_optimum_up_to = 12
    # 300 variables at density 0.3 take HiGHS far longer than the 0.3 s limit to prove.
    long_running_options = {}


def test_plugin_is_found_through_its_entry_point():
    check_plugin_listed("exact", "qslm-solver-exact")


def test_listing_does_not_import_highspy():
    check_listing_is_light(heavy=("highspy", "numba", "numpy", "scipy"))


@pytest.mark.parametrize("sense", ["min", "max"])
def test_proves_the_brute_force_optimum(sense):
    for seed in range(3):
        q = random_qubo(16, density=0.6, seed=seed, sense=sense, offset=1.5)
        best, _ = brute_force(q)
        result = HighsSolver(HighsSolver.Options(warm_start=False)).solve(q)
        assert result.best_energy == pytest.approx(best)
        assert result.info["optimal"] is True
        assert result.info["bound"] == pytest.approx(best)
        assert result.info["gap"] == pytest.approx(0.0, abs=1e-9)


def test_stopped_early_reports_a_valid_bound_and_gap():
    q = random_qubo(120, density=0.5, seed=4, sense="max")
    result = HighsSolver().solve(q, time_limit=0.5)
    assert result.status == "timeout" and result.info["optimal"] is False
    # For a maximisation the bound is above every solution, the best found included.
    assert result.info["bound"] >= result.best_energy - 1e-9
    gap = (result.info["bound"] - result.best_energy) / abs(result.best_energy)
    assert result.info["gap"] == pytest.approx(gap) and gap > 0
    assert result.best_energy >= result.info["warm_start_energy"] - 1e-9


def test_proves_bqp50_1(shared_dir):
    path = shared_dir / "benchmarks" / "qubo" / "bqp50_1.qubo"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    result = HighsSolver().solve(read_qubo(path, sense="max"), time_limit=60)
    assert result.info["optimal"] and result.best_energy == 2098  # Beasley's proven optimum
    np.testing.assert_array_equal(result.samples.shape, (1, 50))


def test_qslm_solve_json_is_clean(tmp_path, qslm_cmd):
    import json
    import subprocess

    from qslm.qubo.io import write_qubo

    q = random_qubo(12, seed=3, sense="max")
    write_qubo(q, tmp_path / "p.qubo")
    # A fresh process: HiGHS prints its banner on the first construction there.
    args = ["solve", str(tmp_path / "p.qubo"), "--maximize", "--solver", "exact.highs", "--json"]
    out = subprocess.run(
        [*qslm_cmd, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["energy"] == pytest.approx(brute_force(q)[0])
    assert result["info"]["optimal"] is True
