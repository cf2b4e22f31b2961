"""qiskit.qaoa on each target, offline: optimum on small problems, noisy runs scored right, a
fake IBM backend transpiled and run, and IBM hardware refused at once without a token."""

from __future__ import annotations

import time

import numpy as np
import pytest

from qslm.errors import ConfigError
from qslm.qubo.model import Qubo
from qslm.qubo.portfolio import solve_with_fallback
from qslm.qubo.solver import ProblemTooLarge
from qslm.testing.problems import brute_force, random_qubo
from qslm_qiskit.errors import MissingCredentials
from qslm_qiskit.hamiltonian import decode_counts
from qslm_qiskit.qaoa import QaoaSolver


def qaoa(**options) -> QaoaSolver:
    return QaoaSolver(QaoaSolver.Options(**options))


@pytest.mark.parametrize("n", [3, 5, 8])
@pytest.mark.parametrize("sense", ["min", "max"])
def test_statevector_finds_the_brute_force_optimum(n, sense):
    q = random_qubo(n, sense=sense, seed=40 + n, offset=-1.25)
    result = qaoa(reps=2).solve(q, seed=3)
    best, _ = brute_force(q)
    assert result.best_energy == pytest.approx(best)
    assert result.energies == pytest.approx(q.energies(result.samples))
    info = result.info
    assert info["optimizer"]["evaluations"] > 0
    assert sum(d["count"] for d in info["distribution"]) <= 1024
    assert info["distribution"][0]["energy"] == pytest.approx(best)
    # The tuned circuit's expectation is in the Qubo's own terms: no better than the optimum.
    better = (lambda a, b: a > b + 1e-9) if sense == "max" else (lambda a, b: a < b - 1e-9)
    assert not better(info["final_expectation"], best)


def test_tuning_improves_the_expectation_over_the_start():
    q = random_qubo(6, seed=2)
    info = qaoa(reps=1, maxiter=50).solve(q, seed=0).info
    assert info["final_expectation"] < info["initial_expectation"]


def test_bit_order_is_variable_order():
    # Only x0 = 1 is rewarded: Qiskit writes qubit 0 last in a bitstring.
    q = Qubo([-5.0, 1.0, 1.0, 1.0])
    result = qaoa(reps=1).solve(q, seed=0)
    assert result.best_sample.tolist() == [1, 0, 0, 0]
    assert result.info["distribution"][0]["bitstring"] == "1000"
    x, counts = decode_counts({"0001": 3, "0110": 1}, 4)
    assert x.tolist() == [[1, 0, 0, 0], [0, 1, 1, 0]] and counts.tolist() == [3, 1]


def test_noisy_aer_answers_are_feasible_and_scored_exactly():
    q = random_qubo(6, seed=11, offset=0.5)
    solver = qaoa(
        backend="aer",
        reps=1,
        maxiter=30,
        depolarizing_1q=0.002,
        depolarizing_2q=0.02,
        readout_error=0.03,
    )
    result = solver.solve(q, seed=1)
    assert np.isin(result.samples, (0, 1)).all()
    assert result.energies == pytest.approx(q.energies(result.samples))
    # Noise spreads the samples: far more distinct bitstrings than a sharp distribution.
    assert result.info["distinct_bitstrings"] > 20
    assert result.best_energy == pytest.approx(brute_force(q)[0])  # 64 states, 1024 shots


def test_fake_ibm_backend_transpiles_runs_and_reports_its_size():
    q = random_qubo(5, seed=8)
    solver = qaoa(backend="fake:FakeManilaV2", reps=1, maxiter=15, shots=512)
    result = solver.solve(q, seed=0)
    circuit = result.info["circuit"]
    assert circuit["qubits"] == 5 and circuit["two_qubit_gates"] > 0 and circuit["depth"] > 0
    assert "fake_manila" in result.info["target"]
    assert result.energies == pytest.approx(q.energies(result.samples))
    plan = "\n".join(solver.plan())
    assert "5 qubits" in plan and "two-qubit gates after transpiling" in plan


def test_fake_backend_refuses_a_problem_larger_than_the_device():
    with pytest.raises(ProblemTooLarge, match="5 qubits"):
        qaoa(backend="fake:FakeManilaV2").solve(random_qubo(6), seed=0)


def test_options_are_checked():
    with pytest.raises(ValueError, match="fake:<FakeBackend>"):
        qaoa(backend="aer_simulator")
    with pytest.raises(ValueError, match="apply to backend 'aer' only"):
        qaoa(backend="statevector", depolarizing_2q=0.01)
    with pytest.raises(ValueError, match="2 \\* reps = 4"):
        qaoa(reps=2, initial_point=[0.1, 0.2])
    with pytest.raises(ConfigError, match="did you mean 'FakeManilaV2'"):
        qaoa(backend="fake:FakeManila").plan()


def test_time_limit_returns_the_best_so_far_marked_timeout():
    q = random_qubo(8, seed=4)
    result = qaoa(reps=3, maxiter=10_000, time_limit=1e-6).solve(q, seed=0)
    assert result.status == "timeout"
    assert result.energies == pytest.approx(q.energies(result.samples))


def test_ibm_without_token_fails_at_once_without_network(no_network):
    solver = qaoa(backend="ibm:ibm_brisbane")
    started = time.perf_counter()
    with pytest.raises(MissingCredentials, match="QISKIT_IBM_TOKEN") as err:
        solver.solve(random_qubo(4), seed=0)
    assert time.perf_counter() - started < 1.0
    assert "Nothing was sent" in str(err.value)
    assert no_network == []
    assert "none found" in "\n".join(solver.plan())


def test_fallback_moves_on_from_ibm_to_anneal_and_records_why(no_network):
    from qslm.plugins import get_registry

    anneal_cls = get_registry().get("qubo_solver", "anneal").load()
    q = random_qubo(6, seed=5)
    result, attempts = solve_with_fallback(
        q,
        [("qiskit.qaoa", qaoa(backend="ibm:ibm_brisbane")), ("anneal", anneal_cls())],
        seed=0,
    )
    assert result.solver == "anneal"
    assert attempts[0]["solver"] == "qiskit.qaoa" and attempts[0]["status"] == "error"
    assert "MissingCredentials" in attempts[0]["reason"]
    assert result.best_energy == pytest.approx(brute_force(q)[0])


# The runtime's deprecated EstimatorV2/SamplerV2 (0.50) must not be what the ibm: path uses.
@pytest.mark.filterwarnings(
    "error:The (Estimator|Sampler)V2 class is deprecated:DeprecationWarning"
)
def test_ibm_path_runs_on_a_fake_device_and_never_shows_the_token(fake_token, monkeypatch):
    """Everything after connecting (ISA transpiling, runtime primitives, job watching) runs on
    qiskit-ibm-runtime's local mode with a fake device standing in for the service."""
    import json

    from qiskit_ibm_runtime.fake_provider import FakeBelemV2

    import qslm_qiskit.ibm as ibm

    seen = {}

    def open_backend(credentials, backend, instance):
        seen["token"], seen["backend"] = credentials.token, backend
        return FakeBelemV2()

    monkeypatch.setattr(ibm, "open_backend", open_backend)
    q = random_qubo(4, seed=9)
    result = qaoa(backend="ibm:ibm_belem", reps=1, maxiter=5, shots=256).solve(q, seed=0)
    assert seen == {"token": fake_token, "backend": "ibm_belem"}
    assert "DONE" in result.info["job_statuses"]
    assert result.energies == pytest.approx(q.energies(result.samples))
    assert fake_token not in json.dumps(result.to_dict())
    assert fake_token not in repr(ibm.find_credentials())


def test_a_service_that_never_answers_times_out_and_errors_hide_the_token(fake_token, monkeypatch):
    import threading

    import qiskit_ibm_runtime  # noqa: F401 (the SDK's first import is not the solver's time)

    import qslm_qiskit.ibm as ibm
    from qslm_qiskit.errors import RemoteTimeout, ServiceUnavailable

    hang = threading.Event()
    monkeypatch.setattr(ibm, "open_backend", lambda *a: hang.wait(30))
    started = time.perf_counter()
    with pytest.raises(RemoteTimeout, match="did not answer within"):
        qaoa(backend="ibm:ibm_x", time_limit=0.3).solve(random_qubo(3), seed=0)
    assert time.perf_counter() - started < 1.5
    hang.set()

    def refuse(credentials, backend, instance):
        raise RuntimeError(f"401 Unauthorized for token {credentials.token}")

    monkeypatch.setattr(ibm, "open_backend", refuse)
    with pytest.raises(ServiceUnavailable) as err:
        qaoa(backend="ibm:ibm_x").solve(random_qubo(3), seed=0)
    assert fake_token not in str(err.value) and "***" in str(err.value)


def test_ibm_job_is_cancelled_on_timeout():
    from qslm_qiskit.errors import RemoteTimeout
    from qslm_qiskit.ibm import wait_for

    class Job:
        cancelled = False

        def status(self):
            return "QUEUED"

        def job_id(self):
            return "job-1"

        def cancel(self):
            Job.cancelled = True

    statuses = []
    with pytest.raises(RemoteTimeout, match="cancelled"):
        wait_for(Job(), timeout=0.2, on_status=statuses.append, poll_s=0.05)
    assert Job.cancelled and statuses == ["QUEUED"]


def test_problem_over_the_simulator_limit_is_refused_before_work():
    with pytest.raises(ProblemTooLarge, match="more than its limit of 20"):
        qaoa().solve(random_qubo(21), seed=0)


def test_resilience_level_reaches_the_runtime_estimator_and_only_for_ibm():
    from qiskit_ibm_runtime.fake_provider import FakeBelemV2

    from qslm_qiskit.targets import make_target

    for level in (0, 2):
        target = make_target("ibm:x", seed=0, ibm_backend=FakeBelemV2(), resilience_level=level)
        assert target.estimator().options.resilience_level == level
    assert (
        make_target("ibm:x", seed=0, ibm_backend=FakeBelemV2()).estimator().options.resilience_level
        == 1
    )
    with pytest.raises(ValueError, match="resilience_level applies to backend 'ibm:' only"):
        qaoa(backend="aer", resilience_level=0)
