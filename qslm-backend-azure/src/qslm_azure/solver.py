"""``azure.ionq``, ``azure.quantinuum``, ``azure.rigetti``: QAOA sampled on Azure Quantum.

Strategy: every remote circuit costs money and queue time, so the QAOA angles are tuned
locally, by qslm-backend-qiskit's ``qiskit.qaoa`` on its exact statevector simulator (the same
circuit, the same COBYLA optimisation), and only the final sampling circuit goes to Azure:
one job per solve. Its bitstrings are decoded from the provider's result format, re-scored
on the Qubo itself and returned best first, with the distribution, the job id and the cost
estimate in ``info``.

Before anything is sent, the circuit is transpiled to the provider's gates and its cost
estimated under the provider's pricing model (:mod:`qslm_azure.providers`); above
``max_cost`` the solver refuses.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from qslm.api import (
    Capabilities,
    ConfigError,
    Deadline,
    Options,
    ProblemTooLarge,
    QslmError,
    Qubo,
    QuboSolver,
    RemoteTimeout,
    SolveResult,
    effective_time_limit,
    resolve_seed,
)
from qslm_azure import __version__
from qslm_azure.providers import IONQ, QUANTINUUM, RIGETTI, Provider
from qslm_qiskit.targets import SIMULATOR_MAX_QUBITS

log = logging.getLogger("qslm_azure.solver")

# The local statevector that tunes the angles holds 2^n amplitudes: qslm-backend-qiskit's own
# simulator limit bounds the problems (the Azure targets' own qubit counts where smaller).
LOCAL_MAX_QUBITS = SIMULATOR_MAX_QUBITS


class CostTooHigh(ConfigError):
    """The job's estimated cost is above the solver's ``max_cost``; nothing was sent."""


class AzureOptions(Options):
    """Options of every Azure Quantum solver."""

    target: str | None = Field(
        default=None,
        description="The provider's target: a simulator (the default, free) or a QPU, e.g. "
        "'ionq.qpu.aria-1', 'quantinuum.qpu.h2-1', 'rigetti.qpu.cepheus-1-108q'.",
    )
    shots: int = Field(default=500, ge=1, le=100_000, description="Shots of the sampling job.")
    reps: int = Field(default=1, ge=1, le=10, description="QAOA depth p (layers).")
    maxiter: int = Field(
        default=100,
        ge=0,
        le=10_000,
        description="Most COBYLA iterations when tuning the angles locally (0: the default ramp).",
    )
    max_cost: float = Field(
        default=0.0,
        ge=0,
        description="Most estimated US dollars one job may cost (list prices, see the "
        "README); 0 allows only free targets (simulators, syntax checkers).",
    )
    time_limit: float | None = Field(
        default=None,
        gt=0,
        description="Seconds for the whole solve, queue included; the tighter of this and the "
        "caller's. On expiry the remote job is cancelled.",
    )
    local_time_fraction: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of the time limit the local angle tuning may use.",
    )
    poll_interval: float = Field(
        default=1.0, gt=0, le=60, description="Seconds before the first status poll."
    )
    poll_max_interval: float = Field(
        default=30.0, gt=0, le=600, description="Cap on the poll interval (it grows x1.5)."
    )
    retries: int = Field(default=4, ge=0, le=20, description="Retries of a transient fault.")
    retry_backoff: float = Field(
        default=1.0, ge=0, le=60, description="Seconds before the first retry; doubles after each."
    )
    retry_max_backoff: float = Field(
        default=30.0, ge=0, le=600, description="Cap on the wait between retries."
    )
    request_timeout: float = Field(
        default=120.0, gt=0, le=3600, description="Longest wait for one request to Azure."
    )
    top: int = Field(default=10, ge=0, le=1000, description="Bitstrings listed in info.")
    job_name: str = Field(
        default="qslm-qaoa", max_length=100, description="Job name shown in the workspace."
    )
    subscription_id: str | None = Field(
        default=None, description="Workspace subscription (else AZURE_QUANTUM_SUBSCRIPTION_ID)."
    )
    resource_group: str | None = Field(
        default=None, description="Workspace resource group (else AZURE_QUANTUM_WORKSPACE_RG)."
    )
    workspace: str | None = Field(
        default=None, description="Workspace name (else AZURE_QUANTUM_WORKSPACE_NAME)."
    )
    location: str | None = Field(
        default=None, description="Workspace region (else AZURE_QUANTUM_WORKSPACE_LOCATION)."
    )
    endpoint: str | None = Field(
        default=None,
        description="Data-plane URL replacing the workspace's own (a private endpoint, or the "
        "offline fake of qslm_azure.testing).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> AzureOptions:
        if self.poll_max_interval < self.poll_interval:
            raise ValueError("poll_max_interval must be at least poll_interval")
        if self.retry_max_backoff < self.retry_backoff:
            raise ValueError("retry_max_backoff must be at least retry_backoff")
        return self


class AzureQaoaSolver(QuboSolver):
    """QAOA angles tuned locally, the sampling run on an Azure Quantum target."""

    Options = AzureOptions
    provider: ClassVar[Provider]
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_variables=LOCAL_MAX_QUBITS, remote=True, needs_credentials=True
    )
    version: ClassVar[str] = __version__
    too_large_hint: ClassVar[str] = (
        "the angles are tuned on a local statevector; use 'anneal' or 'tabu' for larger problems"
    )

    def __init__(self, options: Options | None = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        target = self.target_name
        if not target.startswith(self.provider.name + "."):
            raise ConfigError(
                f"{self.name}: target {target!r} is not a {self.provider.name} target; known: "
                + ", ".join(sorted(self.provider.qubits))
            )
        limit = self.provider.max_qubits(target)
        self.capabilities = Capabilities(
            max_variables=min(LOCAL_MAX_QUBITS, limit or LOCAL_MAX_QUBITS),
            remote=True,
            needs_credentials=True,
        )

    @property
    def target_name(self) -> str:
        return self.options.target or self.provider.default_target

    def _workspace_options(self) -> dict[str, str | None]:
        o = self.options
        return {
            "subscription_id": o.subscription_id,
            "resource_group": o.resource_group,
            "workspace": o.workspace,
            "location": o.location,
        }

    def _report(self, message: str) -> None:
        line = f"  {self.name}: {message}"
        if self.progress is not None:
            self.progress(line)
        else:
            log.info(line.strip())

    # --- pre-flight -------------------------------------------------------------------------

    def plan(self) -> list[str]:
        from qslm_azure.workspace import describe_workspace

        o = self.options
        target = self.target_name
        kind = "simulator" if self.provider.is_simulator(target) else "QPU"
        lines = [
            f"target: {target} ({kind}, at most {self.capabilities.max_variables} variables); "
            f"QAOA reps={o.reps}, angles tuned locally on a statevector (up to {o.maxiter} "
            f"COBYLA iterations), then one job of {o.shots} shots on Azure",
        ]
        for n in (4, 8, 12):
            if n > (self.capabilities.max_variables or n):
                break
            q = Qubo.from_dicts({}, {(i, j): 1.0 for i in range(n) for j in range(i + 1, n)})
            cost = self.estimate(q)
            lines.append(
                f"cost estimate, complete {n}-variable problem: {_units(cost['units'])}, "
                f"~${cost['usd']:.2f} ({cost['gates']['one_qubit']} 1q / "
                f"{cost['gates']['two_qubit']} 2q gates); max_cost ${o.max_cost:g}"
                + (" -> would be refused" if cost["usd"] > o.max_cost else "")
            )
        lines.append(f"cost model: {self.estimate(Qubo([1.0]))['model']}")
        lines.append(describe_workspace(**self._workspace_options()))
        return lines

    def estimate(self, qubo: Qubo, seed: int = 0) -> dict[str, Any]:
        """The job's gate counts and cost for ``qubo`` (angles do not change the count)."""
        from qslm_azure.providers import (
            estimate_cost,
            gate_counts,
            sampling_circuit,
            transpile_for,
        )

        p = self.options.reps
        circuit = transpile_for(self.provider, sampling_circuit(qubo, [0.3] * p, [0.3] * p), seed)
        counts = gate_counts(circuit)
        cost = estimate_cost(self.provider, self.target_name, counts, self.options.shots)
        return {**cost, "gates": counts}

    # --- solving ----------------------------------------------------------------------------

    def solve(
        self, qubo: Qubo, *, seed: int | None = None, time_limit: float | None = None
    ) -> SolveResult:
        self.check_problem(qubo)
        started = time.perf_counter()
        o = self.options
        seed = resolve_seed(seed) % 2**31
        deadline = Deadline(effective_time_limit(time_limit, o.time_limit), started)
        from qslm_azure.workspace import require_workspace

        source = require_workspace(self.name, **self._workspace_options())
        if qubo.num_variables == 0:
            return self.result(qubo, np.zeros((1, 0)), started=started, seed=seed)

        t0 = time.perf_counter()
        tuned = self._tune(qubo, seed, deadline)
        tune_s = time.perf_counter() - t0
        payload, gates, cost = self._compile(qubo, tuned.info["angles"], seed)
        t1 = time.perf_counter()
        watcher, remote, results = self._submit(source, payload, deadline)
        remote_s = time.perf_counter() - t1
        samples, hits = self._samples(qubo, results, watcher.job_id)
        info = {
            **self._job_info(tuned, watcher),
            "circuit": gates,
            "cost_estimate": cost,
            "retries": remote.retries,
            "retried_faults": remote.faults,
            "credentials": source.where,
            **self._distribution(qubo, samples, hits),
        }
        timings = {"tune_s": tune_s, "remote_s": remote_s}
        return self.result(qubo, samples, started=started, seed=seed, info=info, timings=timings)

    def _compile(
        self, qubo: Qubo, angles: dict[str, Any], seed: int
    ) -> tuple[Any, dict[str, int], dict[str, Any]]:
        """The sampling circuit for the tuned angles, transpiled and encoded for the
        provider, with its gate counts and cost estimate; refused above ``max_cost`` or the
        target's qubits, before anything is sent."""
        from qslm_azure.providers import (
            encode,
            estimate_cost,
            gate_counts,
            sampling_circuit,
            transpile_for,
        )

        o = self.options
        circuit = transpile_for(
            self.provider, sampling_circuit(qubo, angles["gamma"], angles["beta"]), seed
        )
        gates = gate_counts(circuit)
        cost = estimate_cost(self.provider, self.target_name, gates, o.shots)
        if cost["usd"] > o.max_cost:
            raise CostTooHigh(
                f"{self.name}: the job on {self.target_name} would cost about ${cost['usd']:.2f} "
                f"({_units(cost['units'])}; {cost['model']}), above max_cost ${o.max_cost:g}; "
                "raise max_cost or use the provider's simulator. Nothing was sent."
            )
        limit = self.capabilities.max_variables
        if limit is not None and circuit.num_qubits > limit:
            raise ProblemTooLarge(f"{self.name}: {circuit.num_qubits} qubits > {limit}")
        return encode(self.provider, circuit), gates, cost

    def _submit(self, source: Any, payload: Any, deadline: Deadline) -> tuple[Any, Any, Any]:
        """Open the workspace, run the job to its end (retries, polls, cancel on timeout);
        returns the watcher, the retry record and the raw results."""
        from qslm_azure.jobs import JobWatcher, Remote
        from qslm_azure.workspace import open_workspace, redact

        o = self.options
        remote = Remote(self.name, o, deadline)
        try:
            workspace = open_workspace(source, o.endpoint)
        except QslmError:
            raise
        except Exception as exc:  # a malformed endpoint, an SDK refusal: never with secrets
            raise ConfigError(
                f"{self.name}: could not open the Azure Quantum workspace: "
                f"{type(exc).__name__}: {redact(str(exc))}"
            ) from None
        watcher = JobWatcher(remote, workspace, self._report)
        try:
            target = watcher.target(self.target_name)
            results = watcher.run(
                target,
                payload,
                shots=o.shots,
                name=o.job_name,
                poll=(o.poll_interval, o.poll_max_interval),
            )
        except RemoteTimeout as exc:
            if watcher.job_id is None:
                raise
            outcome = (
                "it was cancelled"
                if watcher.cancelled
                else "cancelling it failed: cancel it in the workspace's Job management page"
            )
            raise RemoteTimeout(f"{exc}; job {watcher.job_id}: {outcome}") from None
        return watcher, remote, results

    def _samples(self, qubo: Qubo, results: Any, job_id: str | None) -> tuple[Any, Any]:
        """The distinct bitstrings of the job's results and their counts."""
        from qslm_azure.providers import counts_to_samples, decode

        try:
            counts = decode(self.provider, results, self.options.shots, qubo.num_variables)
        except (ValueError, TypeError, KeyError) as exc:
            raise QslmError(
                f"{self.name}: job {job_id} returned a result qslm cannot read: {exc}"
            ) from None
        samples, hits = counts_to_samples(counts, qubo.num_variables)
        if not len(samples):
            raise QslmError(f"{self.name}: job {job_id} returned no bitstring")
        return samples, hits

    def _job_info(self, tuned: SolveResult, watcher: Any) -> dict[str, Any]:
        """Provenance: the job and its statuses, the angles and their tuning."""
        o = self.options
        return {
            "provider": self.provider.name,
            "target": self.target_name,
            "job_id": watcher.job_id,
            "job_ids": [watcher.job_id],
            "job_statuses": watcher.statuses,
            "shots": o.shots,
            "reps": o.reps,
            "angles": tuned.info["angles"],
            "local_tuning": {
                "solver": "qiskit.qaoa (statevector)",
                "status": tuned.status,
                "optimizer": tuned.info.get("optimizer"),
                "final_expectation": tuned.info.get("final_expectation"),
            },
        }

    def _distribution(self, qubo: Qubo, samples: Any, hits: Any) -> dict[str, Any]:
        """The ``top`` best bitstrings (by energy) with their counts."""
        energies = qubo.energies(samples)
        rank = np.argsort(-energies if qubo.sense == "max" else energies, kind="stable")
        return {
            "distinct_bitstrings": len(samples),
            "distribution": [
                {
                    "bitstring": "".join(map(str, samples[i])),
                    "count": round(float(hits[i]), 3),
                    "energy": float(energies[i]),
                }
                for i in rank[: self.options.top]
            ],
        }

    def _tune(self, qubo: Qubo, seed: int, deadline: Deadline) -> SolveResult:
        """Angles from qslm-backend-qiskit's QAOA on the exact statevector (its result's
        ``info["angles"]``); a share of the time limit at most."""
        from qslm_qiskit.qaoa import QaoaSolver

        o = self.options
        local = QaoaSolver(
            QaoaSolver.Options(
                backend="statevector", reps=o.reps, maxiter=o.maxiter, shots=1, top=0
            )
        )
        remaining = deadline.remaining()
        limit = None if remaining == float("inf") else max(0.05, remaining * o.local_time_fraction)
        return local.solve(qubo, seed=seed, time_limit=limit)


def _units(units: dict[str, float]) -> str:
    return ", ".join(f"{v:g} {k.replace('_', ' ')}" for k, v in units.items())


class IonQSolver(AzureQaoaSolver):
    """``azure.ionq``: IonQ's simulator or trapped-ion QPUs (IonQ JSON circuits)."""

    provider: ClassVar[Provider] = IONQ
    name: ClassVar[str] = "azure.ionq"


class QuantinuumSolver(AzureQaoaSolver):
    """``azure.quantinuum``: Quantinuum's syntax checker, emulators or H-series QPUs
    (OpenQASM 2)."""

    provider: ClassVar[Provider] = QUANTINUUM
    name: ClassVar[str] = "azure.quantinuum"


class RigettiSolver(AzureQaoaSolver):
    """``azure.rigetti``: Rigetti's QVM or superconducting QPUs (Quil)."""

    provider: ClassVar[Provider] = RIGETTI
    name: ClassVar[str] = "azure.rigetti"
