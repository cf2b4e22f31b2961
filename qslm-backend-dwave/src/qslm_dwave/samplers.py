"""The local Ocean solvers: ``dwave.exact`` (dimod's ExactSolver), ``dwave.sa`` and
``dwave.tabu`` (dwave-samplers' SimulatedAnnealingSampler and TabuSampler).

Each validates its options table, hands dimod the Qubo's minimisation form as a BQM and
reports the samples through :meth:`QuboSolver.result`, which recomputes every energy from the
Qubo itself, so a result means the same whichever sampler produced it.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from qslm.api import (
    Capabilities,
    ConfigError,
    Deadline,
    Options,
    Qubo,
    QuboSolver,
    SolveResult,
    effective_time_limit,
)
from qslm_dwave import __version__
from qslm_dwave.samplesets import SEED_LIMIT, choose_seed, library, sample_matrix

EXACT_MAX_VARIABLES = 20  # dimod's ExactSolver holds all 2^n samples: 20 -> ~1 s, 40 MB


def seed_field() -> Any:
    return Field(
        default=None,
        ge=0,
        lt=SEED_LIMIT,
        description="Sampler seed (below 2^31); default: the pipeline's seed, else a fresh "
        "one (recorded in the result).",
    )


def time_limit_field() -> Any:
    return Field(
        default=None,
        gt=0,
        description="Seconds; the tighter of this and the caller's limit applies.",
    )


def _start(
    solver: QuboSolver, qubo: Qubo, seed: int | None, time_limit: float | None
) -> tuple[float, Deadline, int | None]:
    """A seeded sampler's start: the problem checked, the clock, the deadline, the seed."""
    solver.check_problem(qubo)
    started = time.perf_counter()
    o = solver.options
    deadline = Deadline(effective_time_limit(o.time_limit, time_limit), started)
    return started, deadline, choose_seed(o.seed, seed)


def _empty_result(solver: QuboSolver, qubo: Qubo, started: float, seed: int | None) -> SolveResult:
    return solver.result(qubo, np.zeros((1, 0)), started=started, seed=seed)


class ExactSolver(QuboSolver):
    """``dwave.exact``: dimod's ExactSolver, every assignment enumerated."""

    class Options(Options):
        keep: int = Field(
            default=1,
            ge=1,
            le=1024,
            description="How many of the lowest-energy assignments to return.",
        )

    capabilities: ClassVar[Capabilities] = Capabilities(
        max_variables=EXACT_MAX_VARIABLES, deterministic=True
    )
    name: ClassVar[str] = "dwave.exact"
    version: ClassVar[str] = __version__
    too_large_hint: ClassVar[str] = (
        "dimod's ExactSolver holds all 2^n samples in memory; use 'exact' (up to 26 "
        "variables), 'dwave.sa' or 'dwave.tabu'"
    )

    def plan(self) -> list[str]:
        return [
            f"dimod ExactSolver: problems of up to {EXACT_MAX_VARIABLES} variables, "
            f"the {self.options.keep} lowest-energy assignment(s) returned"
        ]

    def solve(
        self, qubo: Qubo, *, seed: int | None = None, time_limit: float | None = None
    ) -> SolveResult:
        """Enumerate; ``time_limit`` is not applied (20 variables take about a second)."""
        import dimod

        self.check_problem(qubo)
        started = time.perf_counter()
        if qubo.num_variables == 0:
            return _empty_result(self, qubo, started, seed)
        sampleset = dimod.ExactSolver().sample(qubo.to_bqm())
        best = sampleset.truncate(min(self.options.keep, len(sampleset)), sorted_by="energy")
        info = {"optimal": True, "enumerated": len(sampleset), "library": library("dimod")}
        return self.result(qubo, sample_matrix(best, qubo), started=started, seed=seed, info=info)


class SimulatedAnnealing(QuboSolver):
    """``dwave.sa``: dwave-samplers' SimulatedAnnealingSampler (Metropolis or Gibbs sweeps)."""

    class Options(Options):
        num_reads: int = Field(
            default=32, ge=1, le=100_000, description="Independent anneals, each one sample."
        )
        num_sweeps: int | None = Field(
            default=None,
            ge=1,
            description="Sweeps per anneal; default 1000 (dwave-samplers' default), or the "
            "custom schedule's length times num_sweeps_per_beta.",
        )
        num_sweeps_per_beta: int = Field(
            default=1, ge=1, description="Sweeps at each inverse temperature."
        )
        beta_range: list[float] | None = Field(
            default=None,
            min_length=2,
            max_length=2,
            description="[hot, cold] inverse temperatures; default derived from the weights "
            "by dwave-samplers.",
        )
        beta_schedule_type: Literal["geometric", "linear", "custom"] = Field(
            default="geometric", description="How beta goes from hot to cold."
        )
        beta_schedule: list[float] | None = Field(
            default=None,
            min_length=1,
            description="The inverse temperatures themselves, with beta_schedule_type 'custom'.",
        )
        randomize_order: bool = Field(
            default=False,
            description="Visit variables in a random order each sweep (default: in order).",
        )
        proposal_acceptance_criteria: Literal["Metropolis", "Gibbs"] = Field(
            default="Metropolis", description="How a proposed flip is accepted."
        )
        seed: int | None = seed_field()
        time_limit: float | None = time_limit_field()

        @field_validator("beta_range")
        @classmethod
        def _hot_to_cold(cls, v: list[float] | None) -> list[float] | None:
            if v is not None and not 0 <= v[0] <= v[1]:
                raise ValueError("must be [hot, cold] with 0 <= hot <= cold")
            return v

        @field_validator("beta_schedule")
        @classmethod
        def _non_negative(cls, v: list[float] | None) -> list[float] | None:
            if v is not None and min(v) < 0:
                raise ValueError("inverse temperatures must not be negative")
            return v

        @model_validator(mode="after")
        def _schedule_consistent(self) -> SimulatedAnnealing.Options:
            custom = self.beta_schedule_type == "custom"
            if custom and self.beta_schedule is None:
                raise ValueError("beta_schedule_type 'custom' needs beta_schedule")
            if not custom and self.beta_schedule is not None:
                raise ValueError("beta_schedule needs beta_schedule_type = 'custom'")
            if custom and (self.beta_range is not None or self.num_sweeps is not None):
                raise ValueError(
                    "with a custom beta_schedule leave out beta_range and "
                    "num_sweeps (the schedule sets both)"
                )
            return self

    capabilities: ClassVar[Capabilities] = Capabilities()
    name: ClassVar[str] = "dwave.sa"
    version: ClassVar[str] = __version__

    def plan(self) -> list[str]:
        o = self.options
        sweeps = o.num_sweeps or (
            len(o.beta_schedule) * o.num_sweeps_per_beta if o.beta_schedule else 1000
        )
        return [
            f"dwave-samplers SimulatedAnnealingSampler: {o.num_reads} reads x {sweeps} "
            f"sweeps, {o.beta_schedule_type} schedule"
        ]

    def sampler_parameters(self, seed: int, deadline: Deadline) -> dict[str, Any]:
        """The keyword arguments of ``SimulatedAnnealingSampler.sample``."""
        o = self.options
        params: dict[str, Any] = {
            "num_reads": o.num_reads,
            "num_sweeps_per_beta": o.num_sweeps_per_beta,
            "beta_schedule_type": o.beta_schedule_type,
            "randomize_order": o.randomize_order,
            "proposal_acceptance_criteria": o.proposal_acceptance_criteria,
            "seed": seed,
            # Called between reads; the reads done so far are returned.
            "interrupt_function": deadline.expired,
        }
        for key in ("num_sweeps", "beta_range", "beta_schedule"):
            if getattr(o, key) is not None:
                params[key] = getattr(o, key)
        return params

    def solve(
        self, qubo: Qubo, *, seed: int | None = None, time_limit: float | None = None
    ) -> SolveResult:
        from dwave.samplers import SimulatedAnnealingSampler

        started, deadline, seed = _start(self, qubo, seed, time_limit)
        if qubo.num_variables == 0:
            return _empty_result(self, qubo, started, seed)
        o = self.options
        sampleset = SimulatedAnnealingSampler().sample(
            qubo.to_bqm(), **self.sampler_parameters(seed, deadline)
        )
        reads = len(sampleset)
        status = "timeout" if reads < o.num_reads else "ok"
        beta_range = sampleset.info.get("beta_range")
        info = {
            "num_reads": reads,
            "beta_range": _floats(beta_range),
            "beta_schedule_type": sampleset.info.get("beta_schedule_type"),
            "library": library("dwave-samplers"),
        }
        return self.result(
            qubo,
            sample_matrix(sampleset, qubo),
            started=started,
            seed=seed,
            status=status,
            info=info,
        )


class Tabu(QuboSolver):
    """``dwave.tabu``: dwave-samplers' TabuSampler (multistart tabu search, one read at a
    time)."""

    class Options(Options):
        num_reads: int = Field(
            default=10, ge=1, le=100_000, description="Independent tabu searches, each one sample."
        )
        timeout: int = Field(
            default=20, ge=1, description="Milliseconds each read runs (dwave-samplers' default)."
        )
        tenure: int | None = Field(
            default=None,
            ge=0,
            description="Tabu list length; default min(20, n/4); must be below n.",
        )
        num_restarts: int = Field(
            default=1_000_000, ge=0, description="Restarts per read (0: one plain tabu search)."
        )
        energy_threshold: float | None = Field(
            default=None,
            description="Stop a read once it finds this energy (of the minimisation form) "
            "or lower.",
        )
        seed: int | None = seed_field()
        time_limit: float | None = time_limit_field()

    capabilities: ClassVar[Capabilities] = Capabilities()
    name: ClassVar[str] = "dwave.tabu"
    version: ClassVar[str] = __version__

    def plan(self) -> list[str]:
        o = self.options
        total = o.num_reads * o.timeout / 1000
        return [
            f"dwave-samplers TabuSampler: {o.num_reads} reads x {o.timeout} ms "
            f"(about {total:g} s a problem)"
        ]

    def sampler_parameters(self, qubo: Qubo, seed: int, deadline: Deadline) -> dict[str, Any]:
        """The keyword arguments of ``TabuSampler.sample``; the per-read timeout shrinks so
        that every read fits in the time left."""
        o = self.options
        n = qubo.num_variables
        if o.tenure is not None and o.tenure >= n:
            raise ConfigError(
                f"{self.display_name}: tenure: must be below the number of "
                f"variables ({n}), got {o.tenure}"
            )
        timeout = o.timeout
        remaining = deadline.remaining()
        if np.isfinite(remaining):
            timeout = max(1, min(timeout, int(remaining * 1000 / o.num_reads)))
        params: dict[str, Any] = {
            "num_reads": o.num_reads,
            "timeout": timeout,
            "num_restarts": o.num_restarts,
            "seed": seed,
        }
        if o.tenure is not None:
            params["tenure"] = o.tenure
        if o.energy_threshold is not None:
            params["energy_threshold"] = o.energy_threshold
        return params

    def solve(
        self, qubo: Qubo, *, seed: int | None = None, time_limit: float | None = None
    ) -> SolveResult:
        from dwave.samplers import TabuSampler

        started, deadline, seed = _start(self, qubo, seed, time_limit)
        if qubo.num_variables == 0:
            return _empty_result(self, qubo, started, seed)
        o = self.options
        params = self.sampler_parameters(qubo, seed, deadline)
        sampleset = TabuSampler().sample(qubo.to_bqm(), **params)
        # A read cut short to meet the deadline is what "timeout" means for this solver.
        status = "timeout" if params["timeout"] < o.timeout else "ok"
        info = {
            "num_reads": len(sampleset),
            "timeout_ms": params["timeout"],
            "library": library("dwave-samplers"),
        }
        return self.result(
            qubo,
            sample_matrix(sampleset, qubo),
            started=started,
            seed=seed,
            status=status,
            info=info,
        )


def _floats(value: Any) -> list[float] | None:
    return None if value is None else [float(v) for v in value]
