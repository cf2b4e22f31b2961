"""What differs between the Azure Quantum providers: the circuit format each accepts, the
result format each returns (and its bit order), the gate basis, and the pricing model.

The QAOA circuit itself is qslm-backend-qiskit's (``qaoa_ansatz`` on
:func:`qslm_qiskit.hamiltonian.ising_form`); here it is only bound to the angles tuned
locally, transpiled to the provider's gates and written in its format.

Pricing (list prices on Azure Quantum's pricing page and the providers' documentation, read
in 2025; they change, so the estimate is a guard, not a bill):

* IonQ bills gate-shots: 1-qubit gates x shots at $0.000220 and 2-qubit gates x shots at
  $0.000975 on its QPUs, with a minimum of $12.42 per job (error mitigation off; $97.50 with
  it on). The ``ionq.simulator`` target is free.
* Quantinuum bills H-System Quantum Credits: HQC = 5 + C (N1q + 10 N2q + 5 Nm) / 5000, with C
  the shots, N1q/N2q the 1- and 2-qubit gates and Nm the measurements (state preparations
  counted with them). QPUs and the ``*e`` emulators consume (e)HQCs from the subscription;
  the ``*sc`` syntax checkers are free. Dollars assume the Standard plan's rate of about
  $13.50 per HQC ($135,000 a month for 10,000 HQC); emulator eHQCs are counted but priced 0.
* Rigetti bills QPU time: $0.02 per 10 ms. qslm estimates 1 ms per shot (the repetition rate
  of active-reset superconducting QPUs, readout included) plus the circuit's own duration,
  which for these small circuits is negligible. The QVM simulator is free.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

IONQ_1Q_USD = 0.000220
IONQ_2Q_USD = 0.000975
IONQ_MIN_USD = 12.42
QUANTINUUM_USD_PER_HQC = 13.50
RIGETTI_USD_PER_S = 0.02 / 0.010
RIGETTI_S_PER_SHOT = 1e-3


@dataclass(frozen=True)
class Provider:
    """One provider's formats, basis, targets and pricing."""

    name: str  # "ionq", "quantinuum", "rigetti"
    provider_id: str
    default_target: str
    input_data_format: str
    output_data_format: str
    content_type: str
    basis: tuple[str, ...]
    qubits: dict[str, int]  # target -> qubits, for the targets qslm knows
    free_targets: tuple[str, ...]

    def is_simulator(self, target: str) -> bool:
        return ".sim" in target or target.endswith(".simulator") or target in self.free_targets

    def max_qubits(self, target: str) -> int | None:
        return self.qubits.get(target)


IONQ = Provider(
    name="ionq",
    provider_id="ionq",
    default_target="ionq.simulator",
    input_data_format="ionq.circuit.v1",
    output_data_format="ionq.quantum-results.v1",
    content_type="application/json",
    basis=("rx", "ry", "rz", "h", "x", "cx", "rzz"),
    qubits={
        "ionq.simulator": 29,
        "ionq.qpu.aria-1": 25,
        "ionq.qpu.forte-1": 36,
        "ionq.qpu.forte-enterprise-1": 36,
    },
    free_targets=("ionq.simulator",),
)
QUANTINUUM = Provider(
    name="quantinuum",
    provider_id="quantinuum",
    default_target="quantinuum.sim.h2-1sc",
    input_data_format="honeywell.openqasm.v1",
    output_data_format="honeywell.quantum-results.v1",
    content_type="application/qasm",
    basis=("rx", "ry", "rz", "h", "x", "cx", "rzz"),
    qubits={
        "quantinuum.sim.h2-1sc": 56,
        "quantinuum.sim.h2-1e": 56,
        "quantinuum.qpu.h2-1": 56,
        "quantinuum.sim.h2-2sc": 56,
        "quantinuum.sim.h2-2e": 56,
        "quantinuum.qpu.h2-2": 56,
        "quantinuum.qpu.helios-1": 98,
        "quantinuum.sim.helios-1sc": 98,
        "quantinuum.sim.helios-1e": 98,
    },
    free_targets=("quantinuum.sim.h2-1sc", "quantinuum.sim.h2-2sc", "quantinuum.sim.helios-1sc"),
)
RIGETTI = Provider(
    name="rigetti",
    provider_id="rigetti",
    default_target="rigetti.sim.qvm",
    input_data_format="rigetti.quil.v1",
    output_data_format="rigetti.quil-results.v1",
    content_type="text/plain",
    # Rigetti's native gates (Quil's RX, RZ, CZ); quilc would compile others, but sending
    # native ones keeps the gate count we price the one that runs.
    basis=("rx", "rz", "cz"),
    qubits={"rigetti.sim.qvm": 20, "rigetti.qpu.cepheus-1-108q": 108},
    free_targets=("rigetti.sim.qvm",),
)
PROVIDERS = {p.name: p for p in (IONQ, QUANTINUUM, RIGETTI)}


def sampling_circuit(qubo: Any, gammas: list[float], betas: list[float]) -> Any:
    """qslm-backend-qiskit's QAOA circuit for ``qubo`` with the given angles bound, measured."""
    from qiskit.circuit.library import qaoa_ansatz

    from qslm_qiskit.hamiltonian import ising_form

    form = ising_form(qubo)
    circuit = qaoa_ansatz(form.operator, reps=len(gammas))
    values = {}
    for param in circuit.parameters:  # named γ[k] and β[k] by Qiskit
        values[param] = (gammas if param.name.startswith("γ") else betas)[param.index]
    bound = circuit.assign_parameters(values)
    bound.measure_all()
    return bound


def transpile_for(provider: Provider, circuit: Any, seed: int) -> Any:
    """``circuit`` in the provider's gates (all-to-all connectivity: trapped ions, and quilc
    routes on Rigetti's lattice)."""
    from qiskit import transpile

    return transpile(
        circuit,
        basis_gates=[*provider.basis, "measure"],
        optimization_level=1,
        seed_transpiler=seed,
    )


def gate_counts(circuit: Any) -> dict[str, int]:
    """One- and two-qubit gates and measurements of a transpiled circuit."""
    one = two = meas = 0
    for instruction in circuit.data:
        op = instruction.operation
        if op.name == "measure":
            meas += 1
        elif op.name == "barrier":
            continue
        elif op.num_qubits == 1:
            one += 1
        elif op.num_qubits >= 2:
            two += 1
    return {"one_qubit": one, "two_qubit": two, "measurements": meas, "qubits": circuit.num_qubits}


def estimate_cost(provider: Provider, target: str, counts: dict[str, int], shots: int) -> dict:
    """The job's cost under the provider's pricing model: its own units and estimated USD."""
    one, two, meas = counts["one_qubit"], counts["two_qubit"], counts["measurements"]
    free = target in provider.free_targets
    if provider is IONQ:
        units = {"one_qubit_gate_shots": one * shots, "two_qubit_gate_shots": two * shots}
        usd = (
            0.0
            if free
            else max(IONQ_MIN_USD, one * shots * IONQ_1Q_USD + two * shots * IONQ_2Q_USD)
        )
        model = "IonQ gate-shots ($0.000220 1q, $0.000975 2q, $12.42 minimum per job)"
    elif provider is QUANTINUUM:
        hqc = 5 + shots * (one + 10 * two + 5 * meas) / 5000
        emulator = ".sim." in target
        units = {"ehqc" if emulator else "hqc": 0.0 if free else round(hqc, 3)}
        usd = 0.0 if free or emulator else hqc * QUANTINUUM_USD_PER_HQC
        model = "Quantinuum HQC = 5 + shots (N1q + 10 N2q + 5 Nm) / 5000 (~$13.50 per HQC)"
    else:
        seconds = shots * RIGETTI_S_PER_SHOT
        units = {"qpu_seconds": 0.0 if free else round(seconds, 6)}
        usd = 0.0 if free else seconds * RIGETTI_USD_PER_S
        model = "Rigetti QPU time ($0.02 per 10 ms; 1 ms per shot assumed)"
    return {"units": units, "usd": round(usd, 2), "model": model, "free_target": free}


# --- circuit formats ----------------------------------------------------------------------


def encode(provider: Provider, circuit: Any) -> Any:
    """The transpiled, measured ``circuit`` in the provider's input format (what the SDK's
    target ``submit`` takes)."""
    if provider is IONQ:
        from qslm_azure.workspace import no_sdk_telemetry

        no_sdk_telemetry()
        from azure.quantum.qiskit.backends._qiskit_ionq import qiskit_circ_to_ionq_circ

        # The SDK's own converter (used by its IonQ backends); measurements are implicit.
        gates, _, _ = qiskit_circ_to_ionq_circ(circuit.remove_final_measurements(inplace=False))
        return {"gateset": "qis", "qubits": circuit.num_qubits, "circuit": gates}
    if provider is QUANTINUUM:
        from qiskit import qasm2

        return qasm2.dumps(circuit)
    return to_quil(circuit)


def to_quil(circuit: Any) -> str:
    """A circuit of RX, RZ, CZ and final measurements as a Quil program reading out into
    ``ro`` (qslm writes Quil itself: pyquil, the converter, is an optional heavy extra)."""
    lines = [f"DECLARE ro BIT[{circuit.num_clbits}]"]
    for instruction in circuit.data:
        op = instruction.operation
        qubits = [circuit.find_bit(q).index for q in instruction.qubits]
        if op.name in ("rx", "rz"):
            lines.append(f"{op.name.upper()}({float(op.params[0])!r}) {qubits[0]}")
        elif op.name == "cz":
            lines.append(f"CZ {qubits[0]} {qubits[1]}")
        elif op.name == "measure":
            clbit = circuit.find_bit(instruction.clbits[0]).index
            lines.append(f"MEASURE {qubits[0]} ro[{clbit}]")
        elif op.name == "barrier":
            continue
        else:
            raise ValueError(f"gate {op.name!r} has no Quil form here; transpile to RX, RZ, CZ")
    return "\n".join(lines) + "\n"


def decode(provider: Provider, results: Any, shots: int, n: int) -> dict[str, float]:
    """Counts keyed by bitstrings in Qiskit's order (qubit/variable 0 the rightmost character)
    from the provider's result format.

    IonQ: ``{"histogram": {"<int>": probability}}``, the integer's bit i being qubit i;
    counts are probability x shots (ideal simulators return exact probabilities, so every
    state with weight is kept). Quantinuum: ``{"<register>": ["<bits>", ...]}``, one string
    per shot in OpenQASM's order (bit 0 rightmost). Rigetti: ``{"ro": [[b0, b1, ...], ...]}``,
    one list per shot, index i being ``ro[i]``.
    """
    if isinstance(results, bytes | str):
        results = json.loads(results)
    if not isinstance(results, dict):
        raise ValueError(f"unexpected result of type {type(results).__name__}")
    counts: dict[str, float] = {}
    if provider is IONQ:
        histogram = results.get("histogram")
        if not isinstance(histogram, dict):
            raise ValueError("IonQ result without a histogram")
        for key, p in histogram.items():
            bits = format(int(key), f"0{n}b")[-n:] if n else ""
            counts[bits] = counts.get(bits, 0.0) + float(p) * shots
    elif provider is QUANTINUUM:
        registers = [v for k, v in results.items() if k != "access_token"]
        if len(registers) != 1:
            raise ValueError(f"expected one classical register, got {sorted(results)}")
        for bits in registers[0]:
            key = str(bits)[-n:] if n else ""
            counts[key] = counts.get(key, 0) + 1
    else:
        readout = results.get("ro")
        if not isinstance(readout, list):
            raise ValueError("Rigetti result without an 'ro' readout")
        for shot in readout:
            key = "".join(str(int(b)) for b in reversed(shot[:n]))
            counts[key] = counts.get(key, 0) + 1
    return counts


def counts_to_samples(counts: dict[str, float], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(m, n) 0/1 samples in variable order and their (possibly fractional) counts."""
    from qslm_qiskit.hamiltonian import decode_counts

    kept = {k: v for k, v in counts.items() if v > 0 and not math.isclose(v, 0.0)}
    samples, _ = decode_counts({k: 1 for k in kept}, n)
    return samples, np.array(list(kept.values()), dtype=float)
