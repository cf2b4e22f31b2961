"""Aer noise channels applied to an amplitude-encoded attention row between its preparation and
its measurement, and what each does to the measured (computational-basis) statistics.

The row ``p`` over ``n`` keys is the state ``sum_j sqrt(p_j) |j>`` on ``q = ceil(log2 n)``
qubits; basis states ``n .. 2^q - 1`` (padding) and masked keys have amplitude 0. The channel
acts once, on the prepared state, right before every qubit is measured in the Z basis:

- ``depolarizing`` (``lam``): ``qiskit_aer.noise.depolarizing_error(lam, q)`` on the whole
  register, ``rho -> (1 - lam) rho + lam I / 2^q``. Outcomes: ``p' = (1 - lam) p + lam / 2^q``,
  a pull toward the uniform distribution over all ``2^q`` states, padding included.
- ``amplitude_damping`` (``gamma``): ``amplitude_damping_error(gamma)`` on every qubit. Each
  bit that would read 1 reads 0 with probability ``gamma``: mass moves toward key 0.
- ``phase_damping`` (``lam``): ``phase_damping_error(lam)`` on every qubit. It only shrinks the
  off-diagonal terms of ``rho``; Z-basis outcomes are exactly unchanged, whatever ``lam``. A
  Z-basis measurement cannot see it (the tests show the outcomes unchanged, and show that the
  same channel does change an X-basis measurement, so it really is applied).
- ``thermal`` (``gamma``, excited population ``n_th``): ``thermal_relaxation_error(T1, T2,
  t, n_th)`` on every qubit with ``t / T1 = -ln(1 - gamma)`` and ``T2 = T1``: populations relax
  toward ``(1 - n_th, n_th)``, ``P1 -> (1 - gamma) P1 + gamma n_th``. ``T2`` acts only on
  coherences, so the outcomes do not depend on it; it is not an option.

These are the maps of ``qslm.attention.noise.measurement_distribution`` in the core, which
computes them classically; the tests check Aer's shots against it channel by channel.
"""

from __future__ import annotations

import math
from typing import Any

CHANNELS = ("none", "depolarizing", "amplitude_damping", "phase_damping", "thermal")
# Whole-register channels; the others act on each qubit.
REGISTER_CHANNELS = ("depolarizing",)


def channel_errors(
    channel: str, strength: float, qubits: int, thermal_population: float = 0.0
) -> list[tuple[Any, list[int]]]:
    """The Aer ``QuantumError`` instructions realising ``channel`` on a ``qubits``-qubit register,
    each with the qubits it acts on (empty for ``none`` or strength 0)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown noise channel {channel!r}; expected one of {CHANNELS}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"noise strength must be in [0, 1], got {strength}")
    if channel == "none" or strength == 0.0:
        return []
    from qiskit_aer.noise import (
        amplitude_damping_error,
        depolarizing_error,
        phase_damping_error,
        thermal_relaxation_error,
    )

    if channel == "depolarizing":
        return [(depolarizing_error(strength, qubits), list(range(qubits)))]
    if channel == "amplitude_damping":
        error = amplitude_damping_error(strength)
    elif channel == "phase_damping":
        error = phase_damping_error(strength)
    else:
        # gamma = 1 - exp(-t / T1); gamma = 1 is full relaxation (t much longer than T1).
        time = -math.log1p(-strength) if strength < 1.0 else 50.0
        error = thermal_relaxation_error(1.0, 1.0, time, thermal_population)
    return [(error, [i]) for i in range(qubits)]
