"""``dwave.hybrid``: Leap's hybrid BQM solver (LeapHybridSampler).

The service runs for a time of our choosing but never less than its minimum for the problem's
size (the solver's ``minimum_time_limit`` curve); a shorter request is raised to the minimum
and the result says so. When the caller's own time limit is below that minimum, the solver
refuses before uploading anything.

Tests replace :meth:`HybridSolver._make_sampler`, or the cloud client beneath
LeapHybridSampler, with dwave-system's MockLeapHybridSolver.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import Field

from qslm.api import (
    Capabilities,
    Deadline,
    ProblemTooLarge,
    Qubo,
    QuboSolver,
    SolveResult,
    effective_time_limit,
)
from qslm_dwave import __version__
from qslm_dwave.credentials import describe_credentials, require_credentials
from qslm_dwave.errors import RemoteTimeout
from qslm_dwave.remote import Remote, RemoteOptions, build_sampler, client_config, close_sampler
from qslm_dwave.samplesets import library, sample_matrix

if TYPE_CHECKING:
    import dimod

_US = 1e-6


class HybridSolver(QuboSolver):
    """``dwave.hybrid``: LeapHybridSampler, run time at least the service's minimum."""

    class Options(RemoteOptions):
        time_limit: float | None = Field(
            default=None,
            gt=0,
            description="Seconds the service works on the problem; default, and floor: the "
            "solver's minimum for the problem's size (its minimum_time_limit property). The "
            "wait allows this plus `timeout`.",
        )

    capabilities: ClassVar[Capabilities] = Capabilities(remote=True, needs_credentials=True)
    name: ClassVar[str] = "dwave.hybrid"
    version: ClassVar[str] = __version__

    def plan(self) -> list[str]:
        o = self.options
        which = (
            f"the hybrid solver {o.solver!r}"
            if o.solver
            else ("the newest Leap hybrid BQM solver available to the account")
        )
        run = (
            f"{o.time_limit:g} s (raised to the service's minimum if below it)"
            if o.time_limit
            else "the service's minimum for the problem's size"
        )
        return [f"target: {which}", f"run time: {run}", describe_credentials(o.profile)]

    def _make_sampler(self, config: dict[str, Any]) -> dimod.Sampler:
        """The Leap hybrid sampler (the seam tests replace)."""
        from dwave.system import LeapHybridSampler

        return LeapHybridSampler(**config)

    def solve(
        self, qubo: Qubo, *, seed: int | None = None, time_limit: float | None = None
    ) -> SolveResult:
        """Run on Leap; ``seed`` is recorded but the service takes none. ``time_limit`` bounds
        the whole call, waiting included."""
        self.check_problem(qubo)
        started = time.perf_counter()
        o = self.options
        deadline = Deadline(effective_time_limit(time_limit), started)
        credentials = require_credentials(self.display_name, o.profile)
        if qubo.num_variables == 0:
            return self.result(qubo, np.zeros((1, 0)), started=started, seed=seed)
        remote = Remote(self.display_name, o, deadline)
        # The cloud client's own polling gives up after the longest wait we would allow.
        config = client_config(o, remote.wait_limit(extra=o.time_limit or 0.0))
        sampler = remote.call(
            "connect to the hybrid solver", lambda: build_sampler(self._make_sampler, config)
        )
        try:
            return self._solve_on(sampler, qubo, remote, seed, started, credentials.where)
        finally:
            close_sampler(sampler)

    def _solve_on(
        self,
        sampler: Any,
        qubo: Qubo,
        remote: Remote,
        seed: int | None,
        started: float,
        credentials: str,
    ) -> SolveResult:
        o = self.options
        props = getattr(sampler, "properties", {}) or {}
        limit = props.get("maximum_number_of_variables")
        if limit is not None and qubo.num_variables > limit:
            raise ProblemTooLarge(
                f"{self.display_name}: the problem has {qubo.num_variables} "
                f"variables, more than the hybrid solver's {limit}"
            )
        bqm = qubo.to_bqm()
        minimum = float(sampler.min_time_limit(bqm))
        run_time = max(minimum, o.time_limit or minimum)
        if remote.deadline.remaining() < run_time:
            raise RemoteTimeout(
                f"{self.display_name}: the service runs at least {minimum:g} s on a "
                f"{qubo.num_variables}-variable problem, more than the "
                f"{remote.deadline.remaining():.3g} s allowed; nothing was uploaded"
            )
        params: dict[str, Any] = {"time_limit": run_time}
        if "label" in (getattr(sampler, "parameters", {}) or {}):
            params["label"] = o.label

        def sample() -> dimod.SampleSet:
            sampleset = sampler.sample(bqm, **params)
            sampleset.resolve()
            return sampleset

        sampleset = remote.call("sample on the hybrid solver", sample, timeout=run_time + o.timeout)
        timing = sampleset.info
        solver = getattr(getattr(sampler, "solver", None), "name", None)
        info = {
            "solver": solver,
            "time_limit_s": run_time,
            "minimum_time_limit_s": minimum,
            "raised_to_minimum": o.time_limit is not None and o.time_limit < minimum,
            "problem_id": sampleset.info.get("problem_id"),
            "retries": remote.retries,
            "retried_faults": remote.faults,
            "credentials": credentials,
            "library": library("dwave-system", "dwave-cloud-client"),
        }
        timings = {}
        for key, name in (
            ("run_time", "run_s"),
            ("charge_time", "charge_s"),
            ("qpu_access_time", "qpu_access_s"),
        ):
            value = timing.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                timings[name] = float(value) * _US
        return self.result(
            qubo,
            sample_matrix(sampleset, qubo),
            started=started,
            seed=seed,
            info=info,
            timings=timings,
        )
