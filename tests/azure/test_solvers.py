"""The Azure solvers against the fake Azure Quantum service: the real azure-quantum client
uploads, submits, polls and downloads over HTTP; the fake simulates the circuits."""

from __future__ import annotations

import numpy as np
import pytest

from qslm.qubo.model import Qubo
from qslm.testing import brute_force, random_qubo

SOLVERS = ["azure.ionq", "azure.quantinuum", "azure.rigetti"]


@pytest.mark.parametrize("name", SOLVERS)
def test_each_provider_returns_the_optimum_with_exact_energies_and_its_job(make, fake, name):
    q = random_qubo(6, seed=11, offset=0.5)
    result = make(name).solve(q, seed=3)
    best, _ = brute_force(q)
    assert np.isclose(result.best_energy, best)
    assert np.allclose(result.energies, q.energies(result.samples))
    info = result.info
    assert info["job_id"] in fake.jobs and fake.jobs[info["job_id"]]["status"] == "Succeeded"
    assert fake.jobs[info["job_id"]]["target"] == info["target"]
    assert info["job_statuses"][-1] == "Succeeded" and "Waiting" in info["job_statuses"]
    assert info["cost_estimate"]["usd"] == 0.0 and info["cost_estimate"]["free_target"]
    assert info["distribution"][0]["energy"] == result.best_energy
    assert info["retries"] == 0


def _exact_distribution(q, angles):
    """Exact probabilities of the sampling circuit, keyed by bitstrings in variable order."""
    from qiskit.quantum_info import Statevector

    from qslm_azure.providers import sampling_circuit

    circuit = sampling_circuit(q, angles["gamma"], angles["beta"])
    probs = Statevector(circuit.remove_final_measurements(inplace=False)).probabilities_dict()
    return {key[::-1]: p for key, p in probs.items()}


def _tv(a, b):
    keys = set(a) | set(b)
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in keys)


@pytest.mark.parametrize("name", SOLVERS)
def test_bit_order_of_each_result_format_matches_the_circuit(make, name):
    # Distinct fields make every variable's marginal different, so reading the bits of any
    # format the wrong way round moves the distribution far from the exact one.
    q = Qubo.from_dicts({0: -1.0, 1: 0.6, 2: -0.2}, {(0, 1): 0.5, (1, 2): -0.8})
    shots = 4000
    result = make(name, shots=shots, top=8).solve(q, seed=2)
    exact = _exact_distribution(q, result.info["angles"])
    seen = {d["bitstring"]: d["count"] / shots for d in result.info["distribution"]}
    flipped = {k[::-1]: p for k, p in seen.items()}
    assert _tv(seen, exact) < 0.05
    assert _tv(flipped, exact) > 0.1  # so the check fails if the order were wrong


def test_throttling_then_success_honours_retry_after(make, fake, monkeypatch):
    import qslm_azure.jobs as jobs

    waits = []
    monkeypatch.setattr(jobs, "_sleep", waits.append)
    fake.inject("throttle", times=2, retry_after=0.25)
    q = random_qubo(4, seed=1)
    result = make("azure.ionq", retry_max_backoff=1.0).solve(q, seed=0)
    assert result.info["retries"] == 2
    assert all("429" in f for f in result.info["retried_faults"])
    assert waits[:2] == [0.25, 0.25]  # Retry-After beats the 0.01 s backoff
    assert np.isclose(result.best_energy, brute_force(q)[0])


@pytest.mark.parametrize("fault", ["unavailable", "reset"])
def test_transient_faults_are_retried_with_growing_backoff(make, fake, monkeypatch, fault):
    import qslm_azure.jobs as jobs

    waits = []
    monkeypatch.setattr(jobs, "_sleep", waits.append)
    fake.inject(fault, times=3)
    result = make("azure.quantinuum", retry_backoff=0.01, retry_max_backoff=0.03).solve(
        random_qubo(4, seed=2), seed=0
    )
    assert result.info["retries"] == 3
    assert waits[:3] == [0.01, 0.02, 0.03]  # doubling, capped
    code = "503" if fault == "unavailable" else "Connection"
    assert all(code.lower() in f.lower() for f in result.info["retried_faults"])


def test_transient_faults_beyond_the_retries_are_a_clear_service_error(make, fake):
    from qslm.errors import ServiceUnavailable

    fake.inject("unavailable", times=10)
    with pytest.raises(ServiceUnavailable, match=r"still failing after 3 attempt\(s\).*503"):
        make("azure.ionq", retries=2).solve(random_qubo(3, seed=0), seed=0)


def test_a_failed_job_is_a_permanent_error_naming_the_job(make, fake):
    from qslm.errors import ServiceUnavailable

    fake.fail_jobs = True
    with pytest.raises(ServiceUnavailable, match=r"job \S+ ended Failed: ExecutionFailed"):
        make("azure.rigetti").solve(random_qubo(3, seed=0), seed=0)
    assert fake.cancelled == []  # an ended job is not cancelled


def test_a_slow_job_is_cancelled_at_the_time_limit(make, fake):
    import time

    import azure.quantum.qiskit  # noqa: F401 (the SDK's first import is not the job's time)

    from qslm.errors import RemoteTimeout

    fake.slow = True
    started = time.perf_counter()
    with pytest.raises(RemoteTimeout, match=r"did not finish .*: it was cancelled"):
        make("azure.ionq", time_limit=4.0, maxiter=5).solve(random_qubo(4, seed=0), seed=0)
    assert time.perf_counter() - started < 5.0
    [job_id] = fake.jobs
    assert fake.cancelled == [job_id] and fake.jobs[job_id]["status"] == "Cancelled"


def test_ctrl_c_while_waiting_cancels_the_job(make, fake, monkeypatch):
    import qslm_azure.jobs as jobs

    fake.slow = True
    polls = []

    def interrupt(seconds):
        polls.append(seconds)
        if len(polls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "_sleep", interrupt)
    with pytest.raises(KeyboardInterrupt):
        make("azure.quantinuum").solve(random_qubo(4, seed=0), seed=0)
    [job_id] = fake.jobs
    assert fake.cancelled == [job_id]


def test_missing_credentials_fail_at_once_without_network(no_network):
    import time

    from qslm.errors import MissingCredentials
    from qslm_azure.solver import IonQSolver

    started = time.perf_counter()
    with pytest.raises(MissingCredentials) as err:
        IonQSolver().solve(random_qubo(4, seed=0), seed=0)
    assert time.perf_counter() - started < 1.0
    assert "AZURE_QUANTUM_CONNECTION_STRING" in str(err.value)
    assert "Nothing was sent" in str(err.value)
    assert no_network == []


def test_a_workspace_without_a_non_interactive_credential_is_missing_credentials(
    no_network, monkeypatch
):
    from qslm.errors import MissingCredentials
    from qslm_azure.solver import RigettiSolver

    solver = RigettiSolver(
        RigettiSolver.Options(
            subscription_id="s", resource_group="rg", workspace="ws", location="westus"
        )
    )
    with pytest.raises(MissingCredentials, match="service principal"):
        solver.solve(random_qubo(3, seed=0), seed=0)
    assert no_network == []


def test_an_incomplete_workspace_names_what_is_missing(monkeypatch):
    from qslm.errors import ConfigError
    from qslm_azure.solver import IonQSolver

    monkeypatch.setenv("AZURE_QUANTUM_WORKSPACE_NAME", "ws")
    with pytest.raises(ConfigError, match=r"missing subscription_id .*AZURE_QUANTUM_SUBSCRIPTION"):
        IonQSolver().solve(random_qubo(3, seed=0), seed=0)


def test_a_malformed_connection_string_is_a_config_error_that_does_not_quote_it(monkeypatch):
    from qslm.errors import ConfigError
    from qslm_azure.solver import IonQSolver

    secret = "ApiKey=supersecretvalue123;Nonsense"
    monkeypatch.setenv("AZURE_QUANTUM_CONNECTION_STRING", secret)
    with pytest.raises(ConfigError) as err:
        IonQSolver().solve(random_qubo(3, seed=0), seed=0)
    assert "not a valid Azure Quantum connection string" in str(err.value)
    assert "supersecretvalue123" not in str(err.value)


def test_a_wrong_key_is_rejected_without_showing_it(make, fake, monkeypatch):
    from qslm_azure.jobs import CredentialsRejected

    wrong = fake.connection_string.replace(fake.api_key, "fake-wrong-key-0123456789")
    monkeypatch.setenv("AZURE_QUANTUM_CONNECTION_STRING", wrong)
    with pytest.raises(CredentialsRejected) as err:
        make("azure.ionq").solve(random_qubo(3, seed=0), seed=0)
    assert "401" in str(err.value)
    assert "fake-wrong-key-0123456789" not in str(err.value)


def test_an_unavailable_target_fails_before_submitting(make, fake):
    from qslm.errors import ServiceUnavailable

    fake.unavailable_targets.add("ionq.simulator")
    with pytest.raises(ServiceUnavailable, match="unavailable"):
        make("azure.ionq").solve(random_qubo(3, seed=0), seed=0)
    assert fake.jobs == {}


def test_the_cost_guard_refuses_a_qpu_job_before_sending_anything(make, fake):
    from qslm_azure.solver import CostTooHigh

    with pytest.raises(CostTooHigh, match=r"ionq.qpu.aria-1 would cost about \$\d+") as err:
        make("azure.ionq", target="ionq.qpu.aria-1", max_cost=5.0).solve(
            random_qubo(5, seed=0), seed=0
        )
    assert "Nothing was sent" in str(err.value)
    assert fake.requests == []


def test_a_qpu_job_within_max_cost_runs_and_records_its_estimate(make, fake):
    solver = make("azure.quantinuum", target="quantinuum.qpu.h2-1", max_cost=1000.0, shots=100)
    result = solver.solve(random_qubo(4, seed=0), seed=0)
    cost = result.info["cost_estimate"]
    g = result.info["circuit"]
    hqc = 5 + 100 * (g["one_qubit"] + 10 * g["two_qubit"] + 5 * g["measurements"]) / 5000
    assert cost["units"] == {"hqc": round(hqc, 3)}
    assert cost["usd"] == round(hqc * 13.5, 2)
    assert fake.jobs[result.info["job_id"]]["target"] == "quantinuum.qpu.h2-1"


def test_ionq_and_rigetti_cost_models():
    from qslm_azure.providers import IONQ, RIGETTI, estimate_cost

    gates = {"one_qubit": 40, "two_qubit": 12, "measurements": 6, "qubits": 6}
    ionq = estimate_cost(IONQ, "ionq.qpu.aria-1", gates, 1000)
    assert ionq["units"] == {"one_qubit_gate_shots": 40_000, "two_qubit_gate_shots": 12_000}
    assert ionq["usd"] == round(40_000 * 0.00022 + 12_000 * 0.000975, 2)  # 20.5 > minimum
    assert estimate_cost(IONQ, "ionq.qpu.aria-1", gates, 10)["usd"] == 12.42  # the minimum
    assert estimate_cost(IONQ, "ionq.simulator", gates, 1000)["usd"] == 0.0
    rigetti = estimate_cost(RIGETTI, "rigetti.qpu.cepheus-1-108q", gates, 1000)
    assert rigetti["units"] == {"qpu_seconds": 1.0} and rigetti["usd"] == 2.0


def test_a_target_of_another_provider_is_refused():
    from qslm.errors import ConfigError
    from qslm_azure.solver import IonQSolver

    with pytest.raises(ConfigError, match="not a ionq target"):
        IonQSolver(IonQSolver.Options(target="rigetti.sim.qvm"))


def test_status_lines_reach_the_progress_reporter(make, fake):
    lines = []
    solver = make("azure.rigetti")
    solver.progress = lines.append
    result = solver.solve(random_qubo(3, seed=0), seed=0)
    job = result.info["job_id"]
    assert any("target rigetti.sim.qvm: Available" in line for line in lines)
    assert f"  azure.rigetti: job {job}: Waiting" in lines
    assert f"  azure.rigetti: job {job}: Succeeded" in lines


def test_plan_shows_the_target_cost_estimate_and_credentials(monkeypatch):
    from qslm_azure.solver import IonQSolver

    lines = IonQSolver(IonQSolver.Options(target="ionq.qpu.aria-1", shots=1000)).plan()
    text = "\n".join(lines)
    assert "target: ionq.qpu.aria-1 (QPU" in text
    assert "cost estimate, complete 4-variable problem:" in text
    assert "-> would be refused" in text  # max_cost 0 on a QPU
    assert "workspace: no credentials found" in text


def test_sdk_debug_logs_carry_no_key_and_no_sas_signature(make, fake, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    result = make("azure.ionq").solve(random_qubo(3, seed=0), seed=0)
    text = caplog.text
    # The SDK logs the container's SAS URL at DEBUG; the signature is scrubbed from it.
    assert "Container URI" in text and "sig=***" in text
    assert "fakesig" not in text and fake.api_key not in text
    assert "fakesig" not in str(result.to_dict())


def test_a_permanent_error_while_polling_cancels_the_running_job(make, fake):
    from qslm.errors import ServiceUnavailable

    fake.slow = True
    fake.inject("bad_request", times=1, method="GET")
    with pytest.raises(ServiceUnavailable, match=r"could not poll the job: .*400"):
        make("azure.ionq").solve(random_qubo(3, seed=0), seed=0)
    [job_id] = fake.jobs
    assert fake.cancelled == [job_id]
