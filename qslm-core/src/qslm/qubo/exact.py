"""``exact``: enumerate all 2^n assignments, in blocks of numpy matrix products.

Our own code because the core must solve small problems with numpy alone (dimod's
ExactSolver is the reference). The variables split into a low block of up to 16 bits, whose
2^16 assignments and their energies are tabulated once, and the high bits; for a batch of
high assignments the energies of every combination are one matrix product
``low_bits @ fields.T``. Work is about 2^n * 32 flops, so 26 variables take about a second.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
from pydantic import Field

from qslm import __version__
from qslm.components import Options
from qslm.errors import QslmError
from qslm.qubo.model import Qubo
from qslm.qubo.solver import (
    Capabilities,
    Deadline,
    QuboSolver,
    SolveResult,
    effective_time_limit,
    resolve_seed,
)

MAX_VARIABLES = 26
_LOW_BITS = 16
_BLOCK_ENTRIES = 1 << 20  # energies held at once (8 MiB of float64)


def _bits(indices: np.ndarray, width: int) -> np.ndarray:
    return ((indices[:, None] >> np.arange(width)) & 1).astype(np.float64)


def _block_energies(x: np.ndarray, c: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x @ c + 0.5 * np.einsum("ij,ij->i", x @ w, x)


class ExactSolver(QuboSolver):
    """Exhaustive enumeration: the true optimum for up to 26 variables."""

    class Options(Options):
        keep: int = Field(
            default=1,
            ge=1,
            le=1024,
            description="How many of the lowest-energy assignments to return.",
        )
        time_limit: float | None = Field(default=None, gt=0)

    capabilities: ClassVar[Capabilities] = Capabilities(
        max_variables=MAX_VARIABLES, deterministic=True
    )
    name: ClassVar[str] = "exact"
    version: ClassVar[str] = __version__
    too_large_hint: ClassVar[str] = (
        "enumerating 2^n assignments takes too long; use 'anneal' or 'tabu' for larger problems"
    )

    def solve(
        self, qubo: Qubo, *, seed: int | None = None, time_limit: float | None = None
    ) -> SolveResult:
        self.check_problem(qubo)
        started = time.perf_counter()
        deadline = Deadline(effective_time_limit(self.options.time_limit, time_limit), started)
        seed = None if seed is None else resolve_seed(seed)
        q = qubo.as_min()
        n = q.num_variables
        keep = min(self.options.keep, 1 << n)
        c, w = q.linear, q.coupling_matrix()
        lo = min(n, _LOW_BITS)
        hi = n - lo
        low = _bits(np.arange(1 << lo), lo)
        low_energy = _block_energies(low, c[:lo], w[:lo, :lo])
        w_hl = w[lo:, :lo]
        batch = max(1, _BLOCK_ENTRIES >> lo)
        best_e = np.empty(0)
        best_idx = np.empty(0, dtype=np.int64)  # index = high << lo | low
        status = "ok"
        done = 0
        for start in range(0, 1 << hi, batch):
            if done and deadline.expired():
                status = "timeout"
                break
            high_idx = np.arange(start, min(start + batch, 1 << hi))
            high = _bits(high_idx, hi)
            high_energy = _block_energies(high, c[lo:], w[lo:, lo:])
            energies = low @ (high @ w_hl).T  # (2^lo, batch)
            energies += low_energy[:, None]
            energies += high_energy[None, :]
            flat = energies.ravel(order="F")  # column-major: index = column << lo | row
            if not np.isfinite(flat).all():  # NaN would win argmin: never report it as optimal
                raise QslmError(
                    f"QUBO solver {self.display_name!r}: an energy overflowed float64; "
                    "scale the weights down"
                )
            if keep == 1:
                k = np.array([int(flat.argmin())])
            else:
                k = np.argpartition(flat, min(keep, flat.size) - 1)[:keep]
            best_e = np.concatenate([best_e, flat[k]])
            best_idx = np.concatenate([best_idx, (start << lo) + k])
            order = np.lexsort((best_idx, best_e))[:keep]
            best_e, best_idx = best_e[order], best_idx[order]
            done += high_idx.size
        samples = ((best_idx[:, None] >> np.arange(n)) & 1).astype(np.uint8)
        info = {"optimal": status == "ok", "enumerated": done << lo, "of": 1 << n}
        return self.result(qubo, samples, started=started, seed=seed, status=status, info=info)
