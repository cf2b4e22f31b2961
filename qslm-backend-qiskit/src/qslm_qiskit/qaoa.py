"""``qiskit.qaoa``: QAOA on Qiskit 2.x primitives, every sampled bitstring re-scored exactly.

The Qubo's minimisation form becomes a scaled Ising operator (:mod:`qslm_qiskit.hamiltonian`);
a depth-``reps`` QAOA circuit (``qiskit.circuit.library.qaoa_ansatz``) has its angles tuned by
``scipy.optimize.minimize`` on an estimator, then the tuned circuit is sampled ``shots`` times
and each distinct bitstring is scored on the Qubo itself, best first. Where it runs is the
``backend`` option (:mod:`qslm_qiskit.targets`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from qslm.api import (
    Capabilities,
    Deadline,
    Options,
    ProblemTooLarge,
    Qubo,
    QuboSolver,
    SolveResult,
    effective_time_limit,
    resolve_seed,
)
from qslm_qiskit import __version__
from qslm_qiskit.targets import (
    HARDWARE_MAX_QUBITS,
    SIMULATOR_MAX_QUBITS,
    NoiseSettings,
    Target,
    backend_spec_error,
    circuit_size,
    make_target,
)

SEED_LIMIT = 2**31  # Aer's simulator seed is a 32-bit signed int
CONNECT_TIMEOUT_S = 60.0  # fetching an IBM backend's description; a live service takes seconds


class _OutOfTime(Exception):
    """Raised inside the optimiser's objective when the deadline passes."""


@dataclass
class _Tuning:
    """The angle optimisation's outcome: the best point seen and every expectation."""

    best: dict[str, Any]
    history: list[float] = field(default_factory=list)
    status: str = "ok"
    message: str = "no angles to tune (a constant problem)"


class QaoaSolver(QuboSolver):
    """``qiskit.qaoa``: QAOA with classically tuned angles; the sampled bitstrings are scored
    on the Qubo itself and the best returned, with the distribution in ``info``."""

    class Options(Options):
        backend: str = Field(
            default="statevector",
            description="Where the circuits run: 'statevector' (exact), 'aer' (optionally "
            "noisy, see the noise options), 'fake:<Name>' (a qiskit_ibm_runtime fake "
            "backend: its gates, coupling map and noise on Aer) or 'ibm:<backend>' (IBM "
            "Quantum hardware; needs QISKIT_IBM_TOKEN or a saved account).",
        )
        reps: int = Field(default=1, ge=1, le=10, description="QAOA depth p (layers).")
        shots: int = Field(
            default=1024, ge=1, le=1_000_000, description="Samples of the tuned circuit."
        )
        optimizer: Literal["COBYLA", "Nelder-Mead", "Powell"] = Field(
            default="COBYLA", description="scipy.optimize.minimize method for the angles."
        )
        maxiter: int = Field(
            default=100, ge=0, le=100_000, description="Most optimiser iterations (0: none)."
        )
        initial_point: list[float] | None = Field(
            default=None,
            description="Starting angles [gamma_1..gamma_p, beta_1..beta_p]; default a "
            "linear ramp (gamma rising to 0.8, beta falling from 0.8).",
        )
        top: int = Field(
            default=10, ge=0, le=1000, description="Bitstrings listed in info.distribution."
        )
        depolarizing_1q: float = Field(
            default=0.0, ge=0, le=1, description="backend 'aer': one-qubit gate depolarizing."
        )
        depolarizing_2q: float = Field(
            default=0.0, ge=0, le=1, description="backend 'aer': two-qubit gate depolarizing."
        )
        readout_error: float = Field(
            default=0.0, ge=0, le=0.5, description="backend 'aer': bit-flip chance at readout."
        )
        optimization_level: int = Field(
            default=1, ge=0, le=3, description="Transpiler optimisation level."
        )
        job_timeout: float = Field(
            default=600.0,
            gt=0,
            description="backend 'ibm:': seconds a job may take, queue "
            "included, before it is cancelled.",
        )
        instance: str | None = Field(
            default=None, description="backend 'ibm:': the IBM Cloud instance (CRN or name)."
        )
        resilience_level: int = Field(
            default=1,
            ge=0,
            le=2,
            description="backend 'ibm:': error mitigation of the runtime's Estimator: 0 none, "
            "1 measurement twirling and readout mitigation (the runtime's default), 2 adds "
            "zero-noise extrapolation.",
        )
        seed: int | None = Field(
            default=None,
            ge=0,
            lt=SEED_LIMIT,
            description="Seed of the simulators and transpiler; default the pipeline's, else "
            "a fresh one (recorded in the result).",
        )
        time_limit: float | None = Field(
            default=None, gt=0, description="Seconds; the tighter of this and the caller's."
        )

        @model_validator(mode="after")
        def _consistent(self) -> QaoaSolver.Options:
            error = backend_spec_error(self.backend)
            if error:
                raise ValueError(error)
            noisy = self.depolarizing_1q or self.depolarizing_2q or self.readout_error
            if noisy and self.backend != "aer":
                raise ValueError(
                    "the noise options (depolarizing_1q, depolarizing_2q, readout_error) apply "
                    "to backend 'aer' only; a fake backend brings its own noise model"
                )
            if self.resilience_level != 1 and not self.backend.startswith("ibm:"):
                raise ValueError(
                    "resilience_level applies to backend 'ibm:' only (the runtime's Estimator)"
                )
            if self.initial_point is not None and len(self.initial_point) != 2 * self.reps:
                raise ValueError(
                    f"initial_point needs 2 * reps = {2 * self.reps} angles "
                    f"(gammas then betas), got {len(self.initial_point)}"
                )
            return self

    capabilities: ClassVar[Capabilities] = Capabilities(max_variables=SIMULATOR_MAX_QUBITS)
    name: ClassVar[str] = "qiskit.qaoa"
    version: ClassVar[str] = __version__
    too_large_hint: ClassVar[str] = (
        "QAOA simulation holds a 2^n statevector; use 'anneal' or 'tabu' for larger problems"
    )

    def __init__(self, options: Options | None = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        if self.options.backend.startswith("ibm:"):
            self.capabilities = Capabilities(
                max_variables=HARDWARE_MAX_QUBITS, remote=True, needs_credentials=True
            )

    # --- pre-flight -------------------------------------------------------------------------

    def plan(self) -> list[str]:
        o = self.options
        lines = [
            f"QAOA reps={o.reps}, {o.optimizer} up to {o.maxiter} iterations, {o.shots} shots; "
            "every sampled bitstring re-scored on the Qubo"
        ]
        if o.backend.startswith("ibm:"):
            from qslm_qiskit.ibm import describe_credentials

            return [
                *lines,
                f"target: IBM Quantum backend {o.backend[4:]!r}; its size is read at solve "
                "time and a problem larger than it is refused before any job",
                describe_credentials(),
            ]
        target = self._target(0)
        lines.append(f"target: {target.describe()}; at most {target.max_qubits} variables")
        for n in sorted({min(k, target.max_qubits) for k in (4, 8, 12)}):
            size = self.circuit_size(
                Qubo.from_dicts({}, {(i, j): 1.0 for i in range(n) for j in range(i + 1, n)}),
                target,
            )
            lines.append(
                f"a complete {n}-variable problem: {size['qubits']} qubits, depth "
                f"{size['depth']}, {size['two_qubit_gates']} two-qubit gates after transpiling"
            )
        return lines

    def circuit_size(self, qubo: Qubo, target: Target | None = None) -> dict[str, int]:
        """Qubits, depth and two-qubit gates of the QAOA circuit for ``qubo`` on the target."""
        target = target or self._target(0)
        self._check_fits(qubo, target)
        circuit = self._ansatz(qubo)[0]
        circuit.measure_all()
        return circuit_size(target.isa(circuit))

    # --- solving ----------------------------------------------------------------------------

    def solve(
        self, qubo: Qubo, *, seed: int | None = None, time_limit: float | None = None
    ) -> SolveResult:
        self.check_problem(qubo)
        started = time.perf_counter()
        o = self.options
        seed = resolve_seed(o.seed if o.seed is not None else seed) % SEED_LIMIT
        deadline = Deadline(effective_time_limit(time_limit, o.time_limit), started)
        credentials = None
        if o.backend.startswith("ibm:"):
            from qslm_qiskit.ibm import require_credentials

            credentials = require_credentials(self.name)
        n = qubo.num_variables
        if n == 0:
            return self.result(qubo, np.zeros((1, 0)), started=started, seed=seed)
        target = self._target(seed, credentials, deadline)
        self._check_fits(qubo, target)
        return self._run(qubo, target, seed, deadline, started)

    def _target(
        self, seed: int, credentials: Any = None, deadline: Deadline | None = None
    ) -> Target:
        o = self.options
        ibm_backend = None
        if credentials is not None:
            from qslm_qiskit.ibm import connect

            wait = min(CONNECT_TIMEOUT_S, o.job_timeout, deadline.remaining() if deadline else 1e9)
            ibm_backend = connect(credentials, o.backend[4:], o.instance, timeout=max(wait, 0.1))
        noise = NoiseSettings(o.depolarizing_1q, o.depolarizing_2q, o.readout_error)
        return make_target(
            o.backend,
            seed=seed,
            noise=noise,
            optimization_level=o.optimization_level,
            ibm_backend=ibm_backend,
            resilience_level=o.resilience_level,
        )

    def _check_fits(self, qubo: Qubo, target: Target) -> None:
        if qubo.num_variables > target.max_qubits:
            raise ProblemTooLarge(
                f"QUBO solver {self.name!r}: the problem has {qubo.num_variables} variables, "
                f"more than the {target.max_qubits} qubits of {target.describe()}; "
                f"{self.too_large_hint}"
            )

    def _ansatz(self, qubo: Qubo) -> tuple[Any, Any, list[int]]:
        """The QAOA circuit, the Ising form, and the order of its parameters within
        [gamma_1..gamma_p, beta_1..beta_p]."""
        from qiskit.circuit.library import qaoa_ansatz

        from qslm_qiskit.hamiltonian import ising_form

        form = ising_form(qubo)
        circuit = qaoa_ansatz(form.operator, reps=self.options.reps)
        p = self.options.reps
        order = []
        for param in circuit.parameters:  # named β[k] and γ[k] by Qiskit
            k = param.index
            order.append(k if param.name.startswith("γ") else p + k)
        return circuit, form, order

    def _initial_point(self) -> np.ndarray:
        o = self.options
        if o.initial_point is not None:
            return np.asarray(o.initial_point, dtype=float)
        ramp = (np.arange(o.reps) + 0.5) / o.reps * 0.8
        return np.concatenate([ramp, ramp[::-1]])

    def _run(
        self, qubo: Qubo, target: Target, seed: int, deadline: Deadline, started: float
    ) -> SolveResult:
        from qslm_qiskit.hamiltonian import decode_counts

        o = self.options
        statuses: list[str] = []

        def job_timeout() -> float:
            return max(0.1, min(o.job_timeout, deadline.remaining()))

        t0 = time.perf_counter()
        circuit, form, order = self._ansatz(qubo)
        measured = circuit.copy()
        measured.measure_all()
        isa_measured = target.isa(measured)
        isa = target.isa(circuit) if circuit.num_parameters else None
        size = circuit_size(isa_measured)
        transpile_s = time.perf_counter() - t0

        def bind(angles: np.ndarray) -> np.ndarray:
            return np.asarray(angles, dtype=float)[order]

        t1 = time.perf_counter()
        tuning = self._optimise(target, isa, form.operator, bind, deadline, job_timeout, statuses)
        optimise_s = time.perf_counter() - t1

        # Sample the tuned circuit and score every distinct bitstring exactly.
        t2 = time.perf_counter()
        best = tuning.best
        sampler = target.sampler(o.shots)
        pub = (isa_measured, bind(best["angles"])) if isa is not None else (isa_measured,)
        result = target.run(sampler, [pub], timeout=job_timeout(), on_status=statuses.append)
        counts = result[0].data.meas.get_counts()
        samples, hits = decode_counts(counts, qubo.num_variables)
        sample_s = time.perf_counter() - t2

        info = self._info(qubo, target, size, form, tuning, samples, hits, len(counts))
        if statuses:
            info["job_statuses"] = statuses
        timings = {"transpile_s": transpile_s, "optimise_s": optimise_s, "sample_s": sample_s}
        return self.result(
            qubo,
            samples,
            started=started,
            seed=seed,
            status=tuning.status,
            info=info,
            timings=timings,
        )

    def _optimise(
        self,
        target: Target,
        isa: Any,
        operator: Any,
        bind: Any,
        deadline: Deadline,
        job_timeout: Any,
        statuses: list[str],
    ) -> _Tuning:
        """Optimise the angles on the estimator, tracking the best point evaluated; the time
        limit stops it with the best angles so far."""
        from scipy.optimize import minimize

        o = self.options
        tuning = _Tuning({"value": np.inf, "angles": self._initial_point(), "evaluations": 0})
        if isa is None or o.maxiter <= 0:
            return tuning
        best, history = tuning.best, tuning.history
        estimator = target.estimator()
        observable = operator
        if getattr(isa, "layout", None) is not None:
            observable = observable.apply_layout(isa.layout)

        def expectation(angles: np.ndarray) -> float:
            if deadline.expired():
                raise _OutOfTime
            result = target.run(
                estimator,
                [(isa, observable, bind(angles))],
                timeout=job_timeout(),
                on_status=statuses.append,
            )
            value = float(np.asarray(result[0].data.evs).reshape(-1)[0])
            history.append(value)
            best["evaluations"] += 1
            if value < best["value"]:
                best["value"], best["angles"] = value, np.array(angles, dtype=float)
            return value

        try:
            outcome = minimize(
                expectation,
                self._initial_point(),
                method=o.optimizer,
                options={"maxiter": o.maxiter},
            )
            tuning.message = str(outcome.message)
        except _OutOfTime:
            tuning.status = "timeout"
            tuning.message = "stopped by the time limit; the best angles so far were sampled"
        return tuning

    def _info(
        self,
        qubo: Qubo,
        target: Target,
        size: Any,
        form: Any,
        tuning: _Tuning,
        samples: np.ndarray,
        hits: np.ndarray,
        distinct: int,
    ) -> dict[str, Any]:
        """Provenance: target, circuit, optimizer run, angles, expectations, distribution."""
        o = self.options
        best, history = tuning.best, tuning.history
        energies = qubo.energies(samples)
        rank = np.argsort(-energies if qubo.sense == "max" else energies, kind="stable")
        sign = -1.0 if qubo.sense == "max" else 1.0
        return {
            "backend": o.backend,
            "target": target.describe(),
            "reps": o.reps,
            "shots": o.shots,
            "circuit": size,
            "optimizer": {
                "method": o.optimizer,
                "evaluations": best["evaluations"],
                "message": tuning.message,
            },
            "angles": {
                "gamma": best["angles"][: o.reps].tolist(),
                "beta": best["angles"][o.reps :].tolist(),
            },
            # The Qubo's own sense and units: sign * (scale * <H> + offset).
            "final_expectation": (
                sign * form.min_energy(best["value"]) if np.isfinite(best["value"]) else None
            ),
            "initial_expectation": sign * form.min_energy(history[0]) if history else None,
            "ising_scale": form.scale,
            "distinct_bitstrings": distinct,
            "best_count": int(hits[rank[0]]),
            "distribution": [
                {
                    "bitstring": "".join(map(str, samples[i])),
                    "count": int(hits[i]),
                    "energy": float(energies[i]),
                }
                for i in rank[: o.top]
            ],
        }
