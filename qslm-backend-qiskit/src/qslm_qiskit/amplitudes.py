"""Amplitude encoding of attention rows: one parameterised state-preparation circuit per qubit
count, and the angles that make it prepare ``sum_j sqrt(p_j) |j>`` for many rows at once.

Why our own circuit: ``qiskit.circuit.library.StatePreparation`` synthesises a new circuit for
every amplitude vector (about 130 ms per 32-key row here, preparing plus transpiling), and an
attention call has thousands of rows. The circuit below is the same construction (Mottonen et
al., a binary tree of uniformly controlled RY rotations, each multiplexor as RY and CX gates in
Gray-code order), written once per qubit count with free angles, so a whole batch of rows is
one Aer job that binds a row of angles per circuit (about 0.3 ms per row). The angles are
computed here with numpy for all rows together. The tests check the template against
``StatePreparation``.

Bit order is Qiskit's: key ``j`` is the basis state whose qubit ``i`` holds bit ``i`` of ``j``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np


def num_qubits(n: int) -> int:
    """Qubits that hold ``n`` basis states (at least one)."""
    return max(1, int(n - 1).bit_length())


def _gray(i: int) -> int:
    return i ^ (i >> 1)


@cache
def preparation_template(qubits: int) -> Any:
    """The state-preparation circuit on ``qubits`` qubits, ``2^qubits - 1`` free angles (in the
    order :func:`template_angles` returns them), no measurement.

    Level ``l`` rotates qubit ``l`` conditioned on qubits ``0..l-1``: a multiplexed RY written
    as ``2^l`` RY gates, each followed by a CX from the control whose bit changes next in the
    Gray code. Cached per qubit count; callers copy before appending.
    """
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    angles = ParameterVector("theta", 2**qubits - 1)
    qc = QuantumCircuit(qubits, name=f"amplitudes_{qubits}")
    qc.ry(angles[0], 0)
    k = 1
    for level in range(1, qubits):
        m = 2**level
        for i in range(m):
            qc.ry(angles[k + i], level)
            changed = _gray(i) ^ _gray((i + 1) % m)
            qc.cx(changed.bit_length() - 1, level)
        k += m
    return qc


@cache
def _walsh(level: int) -> np.ndarray:
    """``M[i, j] = (-1)^popcount(gray(i) & j) / 2^level``: the multiplexor's RY angles from the
    rotation angles per control state (the CX gates flip the sign of later RY rotations)."""
    m = 2**level
    parity = np.array([[(_gray(i) & j).bit_count() % 2 for j in range(m)] for i in range(m)])
    return (1.0 - 2.0 * parity) / m


def tree_angles(p: np.ndarray) -> list[np.ndarray]:
    """Per level ``l``, the RY angle of qubit ``l`` for every value ``c`` of qubits ``0..l-1``:
    ``2 asin(sqrt(P(bit l = 1 | low bits = c)))``, shape ``(rows, 2^l)``. ``p`` is
    ``(rows, 2^q)``, rows summing to 1 (an all-zero row gives all-zero angles)."""
    rows, size = p.shape
    q = num_qubits(size)
    if size != 2**q:
        raise ValueError(f"rows must have 2^q entries, got {size}")
    out = []
    for level in range(q):
        low = 2**level
        mass = p.reshape(rows, -1, low).sum(1)  # P(low bits = c)
        ones = p.reshape(rows, -1, 2 * low).sum(1)[:, low:]  # P(low bits = c, bit l = 1)
        ratio = np.divide(ones, mass, out=np.zeros_like(mass), where=mass > 0)
        out.append(2.0 * np.arcsin(np.sqrt(np.clip(ratio, 0.0, 1.0))))
    return out


def template_angles(p: np.ndarray) -> np.ndarray:
    """The ``(rows, 2^q - 1)`` parameter values that make :func:`preparation_template` prepare
    ``sum_j sqrt(p_j) |j>`` for each row of ``p`` (``(rows, 2^q)``)."""
    levels = tree_angles(np.asarray(p, dtype=np.float64))
    return np.concatenate([theta @ _walsh(level).T for level, theta in enumerate(levels)], axis=1)
