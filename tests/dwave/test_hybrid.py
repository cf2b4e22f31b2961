"""dwave.hybrid through the real LeapHybridSampler, its cloud client replaced by a fake service
(dwave-system's MockLeapHybridSolver): the service's minimum time limit is respected."""

from __future__ import annotations

import time

import numpy as np
import pytest

from qslm.qubo.solver import ProblemTooLarge
from qslm.testing import random_qubo
from qslm_dwave.errors import RemoteTimeout
from qslm_dwave.hybrid import HybridSolver


def hybrid(**options):
    return HybridSolver(HybridSolver.Options(**options))


def test_runs_for_the_requested_time_and_reports_timings(fake_token, fake_leap_hybrid):
    service = fake_leap_hybrid(min_time_limit=1.0)
    q = random_qubo(30, sense="max", seed=2)
    result = hybrid(time_limit=4.0, label="nightly").solve(q, seed=0)
    assert service.calls == [{"time_limit": 4.0, "label": "nightly"}]
    assert np.allclose(result.energies, q.energies(result.samples))
    assert result.info["time_limit_s"] == 4.0 and not result.info["raised_to_minimum"]
    assert result.info["solver"] == "hybrid_binary_quadratic_model_version2p"
    assert result.timings["run_s"] == pytest.approx(4.0)
    assert result.timings["qpu_access_s"] == pytest.approx(0.04)


def test_a_time_below_the_services_minimum_is_raised_to_it(fake_token, fake_leap_hybrid):
    service = fake_leap_hybrid(min_time_limit=3.0)
    result = hybrid(time_limit=0.5).solve(random_qubo(10), seed=0)
    assert service.calls[0]["time_limit"] == 3.0
    assert result.info["raised_to_minimum"] and result.info["minimum_time_limit_s"] == 3.0
    default = hybrid().solve(random_qubo(10), seed=0)
    assert default.info["time_limit_s"] == 3.0 and not default.info["raised_to_minimum"]


def test_a_caller_limit_below_the_minimum_is_refused_before_uploading(fake_token, fake_leap_hybrid):
    service = fake_leap_hybrid(min_time_limit=3.0)
    with pytest.raises(RemoteTimeout, match=r"at least 3 s.*nothing was uploaded"):
        hybrid().solve(random_qubo(10), time_limit=1.0)
    assert service.calls == []


def test_a_service_slower_than_the_wait_is_abandoned(fake_token, fake_leap_hybrid):
    fake_leap_hybrid(min_time_limit=0.1, sleep=5.0)
    started = time.perf_counter()
    with pytest.raises(RemoteTimeout, match="no answer within"):
        hybrid(timeout=0.5).solve(random_qubo(10), seed=0)
    assert time.perf_counter() - started < 2.0


def test_more_variables_than_the_solver_takes_is_refused(fake_token, fake_leap_hybrid):
    service = fake_leap_hybrid()
    with pytest.raises(ProblemTooLarge, match="more than the hybrid solver's 1000"):
        hybrid().solve(random_qubo(1001, density=0.001))
    assert service.calls == []


def test_plan(fake_token):
    text = "\n".join(
        hybrid(time_limit=10.0, solver="hybrid_binary_quadratic_model_version2p").plan()
    )
    assert "run time: 10 s" in text and "hybrid_binary_quadratic_model_version2p" in text
    assert "DWAVE_API_TOKEN" in text and fake_token not in text
