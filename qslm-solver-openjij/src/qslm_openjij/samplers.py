"""``openjij.sa`` and ``openjij.sqa``: OpenJij's SASampler and SQASampler on a Qubo.

OpenJij's samplers cannot be interrupted, so a time limit is met between batches of reads:
the reads run in batches (one first, then twice as many while a batch takes under a tenth of
the time left), and no batch starts after the deadline. Batch k gets the seed
``seed + k``, so a seed reproduces the run when no time limit cuts it short. Energies are
recomputed from the samples by :meth:`QuboSolver.result`.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from qslm.api import (
    Capabilities,
    Deadline,
    Options,
    Qubo,
    QuboSolver,
    SolveResult,
    effective_time_limit,
    resolve_seed,
)
from qslm_openjij import __version__

SEED_LIMIT = 2**31  # OpenJij's seeds are 32-bit


class _OpenJij(QuboSolver):
    capabilities: ClassVar[Capabilities] = Capabilities()
    version: ClassVar[str] = __version__

    def make_sampler(self) -> Any:
        raise NotImplementedError

    def parameters(self) -> dict[str, Any]:
        """Keyword arguments of the sampler's ``sample`` (without num_reads and seed)."""
        raise NotImplementedError

    def solve(
        self, qubo: Qubo, *, seed: int | None = None, time_limit: float | None = None
    ) -> SolveResult:
        self.check_problem(qubo)
        started = time.perf_counter()
        deadline = Deadline(effective_time_limit(self.options.time_limit, time_limit), started)
        seed = resolve_seed(seed) % SEED_LIMIT
        n = qubo.num_variables
        if n == 0:
            return self.result(qubo, np.zeros((1, 0)), started=started, seed=seed)
        bqm = qubo.to_bqm()
        sampler = self.make_sampler()
        index = {v: k for k, v in enumerate(qubo.labels)}
        batches: list[np.ndarray] = []
        done, size, k = 0, 1, 0
        total = self.options.num_reads
        while done < total and not (batches and deadline.expired()):
            size = min(size, total - done)
            t0 = time.perf_counter()
            response = sampler.sample(
                bqm, num_reads=size, seed=(seed + k) % SEED_LIMIT, **self.parameters()
            )
            took = time.perf_counter() - t0
            order = [index[v] for v in response.variables]
            x = np.zeros((len(response.record.sample), n), dtype=np.uint8)
            x[:, order] = response.record.sample
            batches.append(x)
            done, k = done + size, k + 1
            if took < deadline.remaining() / 10:
                size *= 2
        status = "ok" if done >= total else "timeout"
        info = {"num_reads": done, "batches": k, "library": _library()}
        samples = np.unique(np.vstack(batches), axis=0)
        return self.result(qubo, samples, started=started, seed=seed, status=status, info=info)


def _library() -> str:
    from importlib import metadata

    return f"openjij {metadata.version('openjij')}"


class OpenJijSA(_OpenJij):
    """``openjij.sa``: OpenJij's simulated annealing (single-spin flips, geometric schedule)."""

    class Options(Options):
        num_reads: int = Field(
            default=32, ge=1, le=100000, description="Independent anneals, each one sample."
        )
        num_sweeps: int = Field(
            default=1000, ge=1, description="Sweeps per anneal (OpenJij's default)."
        )
        beta_range: list[float] | None = Field(
            default=None,
            min_length=2,
            max_length=2,
            description="[beta_min, beta_max]; default derived from the weights by OpenJij.",
        )
        time_limit: float | None = Field(default=None, gt=0)

    name: ClassVar[str] = "openjij.sa"

    def make_sampler(self) -> Any:
        import openjij

        return openjij.SASampler()

    def parameters(self) -> dict[str, Any]:
        o = self.options
        out: dict[str, Any] = {"num_sweeps": o.num_sweeps}
        if o.beta_range:
            out["beta_min"], out["beta_max"] = o.beta_range
        return out


class OpenJijSQA(_OpenJij):
    """``openjij.sqa``: OpenJij's path-integral Monte Carlo (simulated quantum annealing):
    ``trotter`` coupled replicas, the transverse field lowered from ``gamma`` to 0."""

    class Options(Options):
        num_reads: int = Field(
            default=8, ge=1, le=100000, description="Independent anneals, each one sample."
        )
        num_sweeps: int = Field(default=1000, ge=1)
        trotter: int = Field(
            default=4, ge=2, description="Trotter slices (imaginary-time replicas)."
        )
        beta: float | None = Field(
            default=None, gt=0, description="Inverse temperature; default OpenJij's (5.0)."
        )
        gamma: float | None = Field(
            default=None, gt=0, description="Initial transverse field; default OpenJij's (1.0)."
        )
        time_limit: float | None = Field(default=None, gt=0)

    name: ClassVar[str] = "openjij.sqa"

    def make_sampler(self) -> Any:
        import openjij

        return openjij.SQASampler()

    def parameters(self) -> dict[str, Any]:
        o = self.options
        out: dict[str, Any] = {"num_sweeps": o.num_sweeps, "trotter": o.trotter}
        for key in ("beta", "gamma"):
            if getattr(o, key) is not None:
                out[key] = getattr(o, key)
        return out
