"""Where the QAOA circuits run: the exact statevector, Aer (optionally noisy), a fake IBM
backend (its instruction set and noise model on Aer) or IBM hardware.

A :class:`Target` turns a logical circuit into what its primitives accept (an ISA circuit for a
device), reports the transpiled circuit's size for pre-flight, and runs estimator and sampler
jobs. Qiskit is imported only inside methods.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qslm.api import ConfigError

# A statevector of n qubits holds 2^n complex amplitudes. Measured on a 2-core VM: at 20 qubits
# one estimator call of a reps-1 QAOA circuit takes ~4 s and sampling it ~27 s; each further
# qubit doubles both, so 20 is where simulating stops being useful.
SIMULATOR_MAX_QUBITS = 20
# The most qubits of any IBM device (Heron r2, 156) bounds the hardware target before its own
# size is known.
HARDWARE_MAX_QUBITS = 156

_SPEC = re.compile(r"^(statevector|aer|fake:[A-Za-z0-9_]+|ibm:[A-Za-z0-9_\-]+)$")


def backend_spec_error(spec: str) -> str | None:
    """Why ``spec`` names no target kind qslm knows, or None when it does."""
    if _SPEC.match(spec):
        return None
    return (
        f"backend {spec!r} is not one of 'statevector', 'aer', 'fake:<FakeBackend>' (e.g. "
        "'fake:FakeManilaV2') or 'ibm:<backend name>' (e.g. 'ibm:ibm_brisbane')"
    )


def load_fake_backend(name: str) -> Any:
    """An instance of ``qiskit_ibm_runtime.fake_provider.<name>``, or a ConfigError."""
    try:
        import qiskit_ibm_runtime.fake_provider as fake_provider
    except ImportError:
        raise ConfigError(
            f"backend 'fake:{name}' needs qiskit-ibm-runtime: pip install "
            "'qslm-backend-qiskit[ibm]'"
        ) from None
    cls = getattr(fake_provider, name, None)
    if not (isinstance(cls, type) and name.startswith("Fake")):
        known = sorted(n for n in dir(fake_provider) if n.startswith("Fake") and "V1" not in n)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
        raise ConfigError(
            f"option backend 'fake:{name}': no fake backend {name!r} in "
            f"qiskit_ibm_runtime.fake_provider{hint}"
        )
    return cls()


@dataclass
class NoiseSettings:
    """Aer's noise channels: depolarizing on one- and two-qubit gates, and readout error."""

    depolarizing_1q: float = 0.0
    depolarizing_2q: float = 0.0
    readout_error: float = 0.0

    @property
    def any(self) -> bool:
        return bool(self.depolarizing_1q or self.depolarizing_2q or self.readout_error)

    def model(self) -> Any:
        from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error

        noise = NoiseModel(basis_gates=["rz", "sx", "x", "cx"])
        if self.depolarizing_1q:
            noise.add_all_qubit_quantum_error(
                depolarizing_error(self.depolarizing_1q, 1), ["rz", "sx", "x"]
            )
        if self.depolarizing_2q:
            noise.add_all_qubit_quantum_error(depolarizing_error(self.depolarizing_2q, 2), ["cx"])
        if self.readout_error:
            p = self.readout_error
            noise.add_all_qubit_readout_error(ReadoutError([[1 - p, p], [p, 1 - p]]))
        return noise


@dataclass
class Target:
    """One kind of place to run: built by :func:`make_target` from the ``backend`` option."""

    spec: str
    seed: int
    noise: NoiseSettings = field(default_factory=NoiseSettings)
    optimization_level: int = 1
    backend: Any = None  # the Aer simulator, fake or IBM backend (None for statevector)
    resilience_level: int = 1  # the IBM runtime Estimator's error mitigation

    @property
    def kind(self) -> str:
        return self.spec.split(":", 1)[0]

    @property
    def max_qubits(self) -> int:
        if self.backend is None or self.kind == "aer":
            return SIMULATOR_MAX_QUBITS
        device = int(self.backend.num_qubits)
        return device if self.kind == "ibm" else min(device, SIMULATOR_MAX_QUBITS)

    def describe(self) -> str:
        if self.kind == "statevector":
            return "exact statevector simulation (qiskit.primitives), no noise"
        if self.kind == "aer":
            n = self.noise
            noise = (
                f"depolarizing 1q {n.depolarizing_1q:g}, 2q {n.depolarizing_2q:g}, readout "
                f"{n.readout_error:g}"
                if n.any
                else "no noise"
            )
            return f"Aer simulator, {noise}"
        name = getattr(self.backend, "name", self.spec)
        where = "its noise model on Aer" if self.kind == "fake" else "IBM Quantum hardware"
        return f"{name} ({self.backend.num_qubits} qubits; {where})"

    def isa(self, circuit: Any) -> Any:
        """``circuit`` in the target's instruction set (decomposed, for the statevector)."""
        from qiskit import transpile

        if self.kind == "statevector":
            return circuit.decompose(reps=2)
        if self.kind == "aer":
            return transpile(
                circuit,
                basis_gates=["rz", "sx", "x", "cx"],
                optimization_level=self.optimization_level,
                seed_transpiler=self.seed,
            )
        from qiskit.transpiler import generate_preset_pass_manager

        pm = generate_preset_pass_manager(
            optimization_level=self.optimization_level,
            backend=self.backend,
            seed_transpiler=self.seed,
        )
        return pm.run(circuit)

    def estimator(self) -> Any:
        if self.kind == "ibm":
            # The client-side primitives: qiskit-ibm-runtime 0.50 deprecated EstimatorV2 and
            # SamplerV2 for them. They also run a fake backend in local mode (the tests).
            from qiskit_ibm_runtime.executor_estimator import Estimator

            return Estimator(mode=self.backend, options={"resilience_level": self.resilience_level})
        if self.kind == "statevector":
            from qiskit.primitives import StatevectorEstimator

            return StatevectorEstimator(seed=self.seed)
        from qiskit_aer.primitives import EstimatorV2

        return EstimatorV2(options={"backend_options": self._aer_options()})

    def sampler(self, shots: int) -> Any:
        if self.kind == "ibm":
            from qiskit_ibm_runtime.executor_sampler import Sampler

            return Sampler(mode=self.backend, options={"default_shots": shots})
        if self.kind == "statevector":
            from qiskit.primitives import StatevectorSampler

            return StatevectorSampler(default_shots=shots, seed=self.seed)
        from qiskit_aer.primitives import SamplerV2

        return SamplerV2(
            default_shots=shots, seed=self.seed, options={"backend_options": self._aer_options()}
        )

    def run(
        self,
        primitive: Any,
        pubs: list[Any],
        *,
        timeout: float,
        on_status: Callable[[str], None] | None = None,
    ) -> Any:
        """Run ``pubs`` on ``primitive``; a hardware job is watched and cancelled after
        ``timeout`` seconds (local simulation is never cut short mid-circuit)."""
        job = primitive.run(pubs)
        if self.kind != "ibm":
            return job.result()
        from qslm_qiskit.ibm import wait_for

        return wait_for(job, timeout=timeout, on_status=on_status)

    def _aer_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"seed_simulator": self.seed}
        if self.kind == "aer" and self.noise.any:
            options["noise_model"] = self.noise.model()
        elif self.kind == "fake":
            from qiskit_aer.noise import NoiseModel

            options["noise_model"] = NoiseModel.from_backend(self.backend)
        return options


def circuit_size(isa_circuit: Any) -> dict[str, int]:
    """Qubits used, depth and two-qubit gate count of a transpiled circuit (measurements and
    barriers left out)."""
    unitary = isa_circuit.remove_final_measurements(inplace=False)
    two_qubit = sum(
        1
        for inst in unitary.data
        if inst.operation.num_qubits == 2 and inst.operation.name != "barrier"
    )
    active = {q for inst in unitary.data for q in inst.qubits if inst.operation.name != "barrier"}
    return {
        "qubits": len(active),
        "depth": int(unitary.depth(lambda inst: inst.operation.name != "barrier")),
        "two_qubit_gates": two_qubit,
    }


def make_target(
    spec: str,
    *,
    seed: int,
    noise: NoiseSettings | None = None,
    optimization_level: int = 1,
    ibm_backend: Any = None,
    resilience_level: int = 1,
) -> Target:
    """The target for ``spec``; ``ibm_backend`` is the IBM backend object for ``ibm:`` specs
    (fetched by the caller after its credentials check)."""
    error = backend_spec_error(spec)
    if error:
        raise ConfigError(error)
    kind, _, name = spec.partition(":")
    target = Target(
        spec, seed, noise or NoiseSettings(), optimization_level, resilience_level=resilience_level
    )
    if kind == "aer":
        from qiskit_aer import AerSimulator

        target.backend = AerSimulator()
    elif kind == "fake":
        target.backend = load_fake_backend(name)
    elif kind == "ibm":
        target.backend = ibm_backend
    return target
