"""A Qubo as a diagonal Ising Hamiltonian on qubits, scaled for the angle optimiser.

Qubit ``i`` holds variable ``i``; measuring ``|1>`` means ``x_i = 1``. With ``s_i = 2 x_i - 1``
and ``Z|1> = -|1>``, ``s_i = -Z_i``, so the minimisation form's Ising energy
``h . s + sum J_ij s_i s_j + c`` is ``scale * <H> + c`` with
``H = (-sum h_i Z_i + sum J_ij Z_i Z_j) / scale``. ``scale`` is the largest absolute
coefficient, so every angle the optimiser sees lives on the same footing whatever the
problem's units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from qslm.api import Qubo


@dataclass(frozen=True)
class IsingForm:
    """``operator`` (a SparsePauliOp, coefficients in [-1, 1]) with ``scale`` and ``offset``:
    the minimisation form's energy is ``scale * <operator> + offset``."""

    operator: Any
    scale: float
    offset: float
    num_qubits: int

    def min_energy(self, expectation: float) -> float:
        """The minimisation form's energy for an expectation value of :attr:`operator`."""
        return self.scale * float(expectation) + self.offset


def ising_form(qubo: Qubo) -> IsingForm:
    """The Qubo's minimisation form as a scaled SparsePauliOp on ``num_variables`` qubits."""
    from qiskit.quantum_info import SparsePauliOp
    from scipy import sparse

    h, j, offset = qubo.to_ising()
    n = qubo.num_variables
    terms: list[tuple[str, list[int], float]] = [
        ("Z", [i], -float(h[i])) for i in np.flatnonzero(h)
    ]
    coo = sparse.coo_array(j) if sparse.issparse(j) else sparse.coo_array(np.asarray(j))
    terms += [
        ("ZZ", [int(a), int(b)], float(w))
        for a, b, w in zip(coo.row, coo.col, coo.data, strict=True)
        if w != 0.0
    ]
    scale = max((abs(w) for _, _, w in terms), default=0.0) or 1.0
    if not terms:  # a constant problem: the identity keeps the operator's shape
        return IsingForm(SparsePauliOp("I" * n, 0.0), 1.0, offset, n)
    op = SparsePauliOp.from_sparse_list([(p, q, w / scale) for p, q, w in terms], num_qubits=n)
    return IsingForm(op.simplify(), scale, offset, n)


def decode_counts(counts: dict[str, int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Bitstrings from a sampler (Qiskit's order: qubit 0 is the rightmost character) as an
    (m, n) 0/1 array in variable order, with their counts."""
    keys = list(counts)
    x = np.zeros((len(keys), n), dtype=np.uint8)
    for row, key in enumerate(keys):
        bits = key.replace(" ", "")[-n:] if n else ""
        x[row, :] = np.frombuffer(bits[::-1].encode(), dtype=np.uint8) - ord("0")
    return x, np.array([counts[k] for k in keys], dtype=np.int64)
