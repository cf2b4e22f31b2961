"""Every D-Wave solver passes qslm's solver conformance kit (qslm.testing); the remote ones run
against dwave-system's mocks through their real code paths."""

from __future__ import annotations

import pytest

from qslm.testing import SolverConformance
from qslm_dwave.qpu import QpuSolver


class TestExact(SolverConformance):
    solver = "dwave.exact"
    # It cannot be interrupted; 16 variables take ~0.1 s (20, its limit, about 1 s).
    time_limit_variables = 16


class TestSimulatedAnnealing(SolverConformance):
    solver = "dwave.sa"
    solver_options = {"num_reads": 16, "num_sweeps": 200}
    # The time limit is checked between reads: many short reads (~6 ms each on 300 variables,
    # about 12 s in all) make it bite. dwave-samplers prepares every read's initial state
    # first, which takes seconds of its own for 10^5 reads.
    long_running_options = {"num_reads": 2000}


class TestTabu(SolverConformance):
    solver = "dwave.tabu"
    solver_options = {"num_reads": 4, "timeout": 10}
    long_running_options = {"timeout": 60_000}


class TestExternalSampler(SolverConformance):
    solver = "dwave.sampler"
    solver_options = {
        "sampler": "dwave.samplers:SimulatedAnnealingSampler",
        "parameters": {"num_reads": 16, "num_sweeps": 200},
    }


class MockedQpu(QpuSolver):
    """The QPU solver with a mock Pegasus QPU behind its seam; everything else is real."""

    def _make_sampler(self, config):
        from dwave.system.testing import MockDWaveSampler

        return MockDWaveSampler(
            topology_type="pegasus", topology_shape=[6], parameter_warnings=False
        )


class TestQpuOnMock(SolverConformance):
    solver = MockedQpu
    solver_options = {"num_reads": 50}
    # The mock anneals by steepest descent from random states and answers small embedded
    # problems exactly; an 8-variable problem is within both.
    finds_optimum_up_to = 8
    # A remote call cannot return "the best so far": the limit is met by doing the work (a
    # slow service raises RemoteTimeout instead: test_remote_faults.py).
    time_limit_variables = 20
    time_limit_s = 2.0

    @pytest.fixture(autouse=True)
    def _token(self, fake_token):
        import dwave.system  # noqa: F401 (the SDK's first import is not the solver's time)

        return fake_token


class TestHybridOnMock(SolverConformance):
    solver = "dwave.hybrid"
    # The fake service answers with seeded simulated annealing.
    reproducible = False

    time_limit_s = 2.0

    @pytest.fixture(autouse=True)
    def _service(self, fake_token, fake_leap_hybrid):
        import dwave.system  # noqa: F401 (the SDK's first import is not the solver's time)

        fake_leap_hybrid(min_time_limit=0.1)
