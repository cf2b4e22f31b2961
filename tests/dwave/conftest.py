"""Fixtures for the D-Wave backend's tests: no real credentials, a fake token, mock QPUs.

Every test runs with dwave's configuration isolated (no DWAVE_* variables, an empty config
home, a fresh working directory), so a developer's own dwave.conf or token can never be used
or leak into a test.
"""

from __future__ import annotations

from typing import Any

import pytest

FAKE_TOKEN = "QSL-7f3a9c0e5b1d2468ace0f13579bdf2468ace0f13"


@pytest.fixture(autouse=True)
def isolated_dwave_config(tmp_path, monkeypatch):
    for name in (
        "DWAVE_API_TOKEN",
        "DWAVE_CONFIG_FILE",
        "DWAVE_PROFILE",
        "DWAVE_API_SOLVER",
        "DWAVE_API_ENDPOINT",
        "DWAVE_API_REGION",
        "DWAVE_API_CLIENT",
    ):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("DWAVE_CACHE_HOME", str(tmp_path / "dwave-cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


@pytest.fixture
def fake_token(monkeypatch):
    """A syntactically plausible token in the environment; never valid anywhere."""
    monkeypatch.setenv("DWAVE_API_TOKEN", FAKE_TOKEN)
    return FAKE_TOKEN


def make_mock_qpu(topology: str = "pegasus", shape: list[int] | None = None, **kwargs: Any) -> Any:
    """dwave-system's MockDWaveSampler, quiet about parameters it does not emulate."""
    from dwave.system.testing import MockDWaveSampler

    shape = shape or {"pegasus": [6], "zephyr": [2, 4], "chimera": [4, 4, 4]}[topology]
    return MockDWaveSampler(
        topology_type=topology, topology_shape=shape, parameter_warnings=False, **kwargs
    )


@pytest.fixture
def mock_qpu():
    """``mock_qpu(topology="pegasus", shape=None, **kwargs)``: a MockDWaveSampler."""
    return make_mock_qpu


@pytest.fixture
def qpu_factory(monkeypatch):
    """Make QpuSolver's sampler a mock: ``qpu_factory(sampler)`` patches the seam and returns
    the configs the solver asked for."""
    from qslm_dwave.qpu import QpuSolver

    configs: list[dict[str, Any]] = []

    def install(sampler_or_factory: Any) -> list[dict[str, Any]]:
        def make(self, config):
            configs.append(config)
            if callable(sampler_or_factory) and not hasattr(sampler_or_factory, "sample"):
                return sampler_or_factory()
            return sampler_or_factory

        monkeypatch.setattr(QpuSolver, "_make_sampler", make)
        return configs

    return install


class FakeHybridClient:
    """Stands in for dwave.cloud's Client beneath the real LeapHybridSampler: its solver is
    dwave-system's MockLeapHybridSolver, answering with simulated annealing (seeded), and
    the problem's label accepted as Leap does. Nothing leaves the process."""

    configs: list[dict[str, Any]] = []
    solver_factory: Any = None

    def __init__(self, solver: Any) -> None:
        self.solver = solver

    @classmethod
    def from_config(cls, **config: Any) -> FakeHybridClient:
        cls.configs.append(config)
        return cls(cls.solver_factory())

    def get_solver(self) -> Any:
        return self.solver

    def close(self, wait: bool | None = None) -> None:
        pass


def fake_hybrid_solver(min_time_limit: float = 1.0, sleep: float = 0.0) -> Any:
    import time
    import weakref

    import dwave.cloud.computation
    from dwave.samplers import SimulatedAnnealingSampler
    from dwave.system.testing import MockLeapHybridSolver

    class Solver(MockLeapHybridSolver):
        name = "hybrid_binary_quadratic_model_version2p"
        properties = {
            **MockLeapHybridSolver.properties,
            "minimum_time_limit": [
                [1, min_time_limit],
                [1024, min_time_limit],
                [4096, 10.0],
                [10000, 40.0],
            ],
            "maximum_number_of_variables": 1000,
        }
        calls: list[dict[str, Any]] = []
        results: list[Any] = []

        def sample_bqm(self, problem, time_limit, label=None):
            self.calls.append({"time_limit": time_limit, "label": label})
            time.sleep(sleep)
            bqm = type(problem)(problem.linear, problem.quadratic, problem.offset, problem.vartype)
            result = SimulatedAnnealingSampler().sample(bqm, num_reads=20, seed=11)
            result.info.update(
                run_time=time_limit * 1e6,
                charge_time=time_limit * 1e6,
                qpu_access_time=40_000,
                problem_id="fake-hybrid-1",
            )
            future = dwave.cloud.computation.Future("fake_solver", None)
            future._result = {"sampleset": result, "problem_type": "bqm"}
            # The future holds its sample set by weak reference: keep it alive here.
            self.results.append(result)
            future._sampleset = weakref.ref(result)
            return future

    return Solver()


@pytest.fixture
def fake_leap_hybrid(monkeypatch):
    """Patch the cloud client beneath LeapHybridSampler; returns a function setting the fake
    service's minimum time limit and latency, which returns the solver (to see its calls)."""
    import dwave.system.samplers.leap_hybrid_sampler as leap

    FakeHybridClient.configs = []
    monkeypatch.setattr(leap, "Client", FakeHybridClient)

    def configure(min_time_limit: float = 1.0, sleep: float = 0.0) -> Any:
        solver = fake_hybrid_solver(min_time_limit, sleep)
        solver.calls.clear()
        FakeHybridClient.solver_factory = staticmethod(lambda: solver)
        return solver

    configure()
    return configure
