"""What noise channels do to computational-basis measurements of an amplitude-encoded row.

A row of attention probabilities ``p`` over ``n`` keys is the state
``|psi> = sum_j sqrt(p_j) |j>`` on ``q = ceil(log2 n)`` qubits (key ``j`` is the basis state
whose bit ``i`` is bit ``i`` of ``j``; basis states ``j >= n`` have amplitude 0). Measuring
every qubit in the Z basis draws ``j`` with probability ``<j|rho|j>``. Each channel below is
applied to ``rho`` just before the measurement; only the diagonal of the result matters, and
for these channels the new diagonal depends on the old diagonal alone, so the effect is a
classical stochastic map on ``p`` (derived from the Kraus operators, checked in the tests
against a density-matrix simulation):

- ``depolarizing`` (strength ``lam``, on the whole register):
  ``rho -> (1 - lam) rho + lam I / 2^q``, so ``p' = (1 - lam) p + lam / 2^q``: mixing toward
  the uniform distribution over all ``2^q`` basis states, padding states included.
- ``amplitude_damping`` (``gamma``, on every qubit): Kraus ``[[1, 0], [0, sqrt(1-gamma)]]``,
  ``[[0, sqrt(gamma)], [0, 0]]``; the populations go ``P0 += gamma P1``,
  ``P1 *= 1 - gamma``: each measured bit that reads 1 reads 0 with probability ``gamma``.
- ``phase_damping`` (``lam``, on every qubit): Kraus ``[[1, 0], [0, sqrt(1-lam)]]``,
  ``[[0, 0], [0, sqrt(lam)]]``; only off-diagonal terms shrink, so Z-basis statistics are
  exactly unchanged. Sampled attention measures only in the Z basis: no effect, by design.
- ``thermal`` (``gamma``, excited population ``n_th``, on every qubit): generalised
  amplitude damping, relaxation toward the thermal populations ``(1 - n_th, n_th)``:
  ``P1 -> (1 - gamma) P1 + gamma n_th``, ``P0 -> (1 - gamma) P0 + gamma (1 - n_th)``
  (``n_th = 0`` is amplitude damping).

An outcome that names no key (``j >= n``, padding) or a masked key is not an attention sample;
the sampled backend discards such shots (post-selection) and averages over the rest.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CHANNELS = ("none", "depolarizing", "amplitude_damping", "phase_damping", "thermal")


def num_qubits(n: int) -> int:
    """Qubits that hold ``n`` basis states (at least one)."""
    return max(1, math.ceil(math.log2(max(n, 1))))


def measurement_distribution(
    p: torch.Tensor, channel: str, strength: float, thermal_population: float = 0.0
) -> torch.Tensor:
    """Z-basis outcome probabilities over the last axis (length ``2^q``) after ``channel``.

    ``p`` holds the noiseless probabilities (``|amplitude|^2``) of the ``2^q`` basis states.
    """
    import torch

    size = p.shape[-1]
    q = num_qubits(size)
    if size != 2**q:
        raise ValueError(f"the last axis must have 2^q entries, got {size}")
    if channel not in CHANNELS:
        raise ValueError(f"unknown noise channel {channel!r}; expected one of {CHANNELS}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"noise strength must be in [0, 1], got {strength}")
    if channel in ("none", "phase_damping") or strength == 0.0:
        return p
    if channel == "depolarizing":
        total = p.sum(-1, keepdim=True)
        return (1.0 - strength) * p + strength * total / size
    up = strength * thermal_population if channel == "thermal" else 0.0
    down = strength - up  # gamma (1 - n_th): probability a 1 reads 0; up: a 0 reads 1
    lead = p.shape[:-1]
    out = p
    for i in range(q):
        x = out.reshape(*lead, 2 ** (q - 1 - i), 2, 2**i)
        p0, p1 = x[..., 0, :], x[..., 1, :]
        new0 = (1.0 - up) * p0 + down * p1
        new1 = up * p0 + (1.0 - down) * p1
        out = torch.stack((new0, new1), dim=-2).reshape(*lead, size)
    return out
