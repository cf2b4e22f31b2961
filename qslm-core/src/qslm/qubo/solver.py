"""The QUBO solver protocol: what every solver plugin implements and returns.

A solver is a :class:`~qslm.components.Component` with a ``capabilities`` class attribute and a
``solve(qubo, *, seed=None, time_limit=None)`` method. Solvers minimise internally (on
:meth:`Qubo.as_min`) and report energies in the Qubo's own sense; :meth:`QuboSolver.result`
does that conversion, so a plugin only hands it 0/1 samples.
"""

from __future__ import annotations

import math
import secrets
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from qslm.components import Component
from qslm.errors import ConfigError

if TYPE_CHECKING:
    from qslm.qubo.model import Qubo


class ProblemTooLarge(ConfigError):
    """The problem has more variables than the solver accepts (raised before any work)."""


@dataclass(frozen=True)
class Capabilities:
    """What a solver can do, for pre-flight checks and for choosing solvers.

    ``max_variables``: the largest problem it accepts (None: no limit). ``remote``: sends the
    problem to a service. ``deterministic``: the same input gives the same answer even without
    a seed. ``needs_credentials``: needs an account or token to run. ``max_energy``: the
    largest sum of weight magnitudes its arithmetic holds (a float32 solver's is far below
    float64's, which every Qubo already respects).
    """

    max_variables: int | None = None
    max_energy: float | None = None
    remote: bool = False
    deterministic: bool = False
    needs_credentials: bool = False


@dataclass
class SolveResult:
    """Samples and energies from one solver call, best first, in the objective's sense.

    ``samples`` is (m, n) uint8 in the Qubo's variable order; ``energies`` are ``f(x)`` as
    written (with sense "max" the first is the largest). ``status`` is "ok" or "timeout"
    (stopped by the time limit; the samples are the best found so far). ``feasible`` is None
    unless a caller checked the samples against constraints.
    """

    samples: np.ndarray
    energies: np.ndarray
    solver: str
    version: str = ""
    sense: str = "min"
    seed: int | None = None
    status: str = "ok"
    timings: dict[str, float] = field(default_factory=dict)
    feasible: bool | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def best_sample(self) -> np.ndarray | None:
        return self.samples[0] if self.num_samples else None

    @property
    def best_energy(self) -> float | None:
        return float(self.energies[0]) if self.num_samples else None

    @property
    def wall_s(self) -> float:
        return float(self.timings.get("wall_s", math.nan))

    def to_dict(self, *, samples: bool = False) -> dict[str, Any]:
        """JSON-safe summary: the best sample and energy, all energies, timings and info;
        every sample too with ``samples=True``."""
        best = self.best_sample
        out: dict[str, Any] = {
            "solver": self.solver,
            "version": self.version,
            "status": self.status,
            "sense": self.sense,
            "seed": self.seed,
            "best_energy": self.best_energy,
            "best_sample": None if best is None else best.astype(int).tolist(),
            "num_samples": self.num_samples,
            "energies": self.energies.tolist(),
            "feasible": self.feasible,
            "timings": jsonable(self.timings),
            "info": jsonable(self.info),
        }
        if samples:
            out["samples"] = self.samples.astype(int).tolist()
        return out


def jsonable(value: Any) -> Any:
    """numpy values to Python ones and non-finite floats to None, for JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class QuboSolver(Component):
    """Base class of QUBO solvers. Subclasses set ``capabilities`` (and ``name``/``version``
    for results) and implement :meth:`solve`, calling :meth:`check_problem` first."""

    capabilities: ClassVar[Capabilities] = Capabilities()
    name: ClassVar[str] = ""
    version: ClassVar[str] = ""
    # Added to the too-large error, e.g. "use 'anneal' for larger problems".
    too_large_hint: ClassVar[str] = ""
    # Where a solver reports long remote work (job status, queue) as it happens: None, or a
    # callable taking one line; the [select] stage sets it to the run's progress reporter.
    progress: Callable[[str], None] | None = None

    @abstractmethod
    def solve(
        self, qubo: Qubo, *, seed: int | None = None, time_limit: float | None = None
    ) -> SolveResult:
        """Minimise (or maximise, per ``qubo.sense``) and return samples best first.

        ``seed`` makes a stochastic solver reproducible (None: a fresh seed, recorded in the
        result). ``time_limit`` in seconds: stop and return the best so far with status
        "timeout".
        """

    @property
    def display_name(self) -> str:
        return self.name or type(self).__name__

    def check_problem(self, qubo: Qubo) -> None:
        """Raise :class:`ProblemTooLarge` when the problem exceeds ``max_variables``."""
        limit = self.capabilities.max_variables
        if limit is not None and qubo.num_variables > limit:
            hint = f"; {self.too_large_hint}" if self.too_large_hint else ""
            raise ProblemTooLarge(
                f"QUBO solver {self.display_name!r}: the problem has {qubo.num_variables} "
                f"variables, more than its limit of {limit}{hint}"
            )
        most = self.capabilities.max_energy
        if most is not None:
            scale = float(np.abs(qubo.linear).sum() + abs(qubo.offset))
            scale += float(np.abs(qubo.quadratic.data if qubo.is_sparse else qubo.quadratic).sum())
            if scale > most:
                raise ProblemTooLarge(
                    f"QUBO solver {self.display_name!r}: the weights' magnitudes sum to "
                    f"{scale:.3g}, beyond the {most:g} its arithmetic holds; scale the "
                    "problem down or use another solver"
                )

    def result(
        self,
        qubo: Qubo,
        samples: np.ndarray,
        *,
        started: float,
        seed: int | None,
        status: str = "ok",
        info: dict[str, Any] | None = None,
        timings: dict[str, float] | None = None,
    ) -> SolveResult:
        """Build the result: energies recomputed exactly from ``samples`` in the Qubo's sense,
        rows sorted best first, ``wall_s`` measured from ``started`` (``time.perf_counter()``)."""
        x = np.asarray(samples, dtype=np.uint8)
        if x.ndim == 1:
            x = x[None, :]
        energies = qubo.energies(x)
        order = np.argsort(-energies if qubo.sense == "max" else energies, kind="stable")
        return SolveResult(
            samples=x[order],
            energies=energies[order],
            solver=self.display_name,
            version=self.version,
            sense=qubo.sense,
            seed=seed,
            status=status,
            timings={"wall_s": time.perf_counter() - started, **(timings or {})},
            info=dict(info or {}),
        )


def resolve_seed(seed: int | None) -> int:
    """The seed to use and record: the given one, else a fresh random one."""
    if seed is None:
        return secrets.randbits(32)
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def effective_time_limit(*limits: float | None) -> float | None:
    """The tightest of the given limits (None means no limit); each must be positive."""
    given = [float(t) for t in limits if t is not None]
    for t in given:
        if not t > 0:
            raise ConfigError(f"time limit must be positive seconds, got {t!r}")
    return min(given) if given else None


class Deadline:
    """A wall-clock deadline from ``time.perf_counter()``; never expires without a limit."""

    def __init__(self, time_limit: float | None, start: float | None = None) -> None:
        self.start = time.perf_counter() if start is None else start
        self.at = math.inf if time_limit is None else self.start + time_limit

    def expired(self) -> bool:
        return time.perf_counter() >= self.at

    def remaining(self) -> float:
        return self.at - time.perf_counter()
