"""``dwave.sampler``: any installed dimod sampler, named ``"module:Class"``, as a QUBO solver.

So a third-party annealer that already speaks dimod works in ``pipeline.toml`` with no new
code::

    [select.solvers."dwave.sampler"]
    sampler = "dwave.samplers:SteepestDescentSolver"
    parameters = { num_reads = 50 }

``init`` holds the constructor's keyword arguments and ``parameters`` those of ``sample()``,
checked against the sampler's ``parameters`` (dimod's convention) before the call. A sampler
that takes a ``seed`` gets the pipeline's seed unless ``parameters`` sets one. Credentials never
go in these tables: a key that looks like a secret is refused (samplers from the Ocean SDK read
theirs from the environment or dwave.conf).
"""

from __future__ import annotations

import importlib
import re
import time
from importlib import metadata
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from qslm.api import Capabilities, ConfigError, Options, QslmError, Qubo, QuboSolver, SolveResult
from qslm_dwave import __version__
from qslm_dwave.credentials import redact_sdk_logs
from qslm_dwave.samplesets import choose_seed, dist_version, sample_matrix

_SECRET_KEY = re.compile(r"(token|secret|password|api[_-]?key|credential)", re.I)


class ExternalSampler(QuboSolver):
    """``dwave.sampler``: wraps a dimod sampler class named in the options."""

    class Options(Options):
        sampler: str = Field(
            pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
            description="The sampler class as 'module:Class', e.g. "
            "'dwave.samplers:SteepestDescentSolver'.",
        )
        init: dict[str, Any] = Field(
            default={}, description="Keyword arguments of the constructor."
        )
        parameters: dict[str, Any] = Field(
            default={}, description="Keyword arguments of sample(), e.g. num_reads."
        )

    capabilities: ClassVar[Capabilities] = Capabilities()
    name: ClassVar[str] = "dwave.sampler"
    version: ClassVar[str] = __version__

    def _key(self, key: str) -> str:
        return f"{self.display_name}: {key}"

    def sampler_class(self) -> type:
        """Import the class, checking that it is a dimod sampler."""
        import dimod

        module_name, _, attr = self.options.sampler.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:
            raise ConfigError(
                f"{self._key('sampler')}: cannot import "
                f"{self.options.sampler!r}: {type(exc).__name__}: {exc}"
            ) from None
        dimod_like = isinstance(obj, type) and (
            issubclass(obj, dimod.Sampler) or callable(getattr(obj, "sample", None))
        )
        if not dimod_like:
            raise ConfigError(
                f"{self._key('sampler')}: {self.options.sampler!r} is not a "
                "dimod sampler class (a dimod.Sampler, or a class with sample())"
            )
        for table in ("init", "parameters"):
            for key in getattr(self.options, table):
                if _SECRET_KEY.search(key):
                    raise ConfigError(
                        f"{self._key(f'{table}.{key}')}: credentials are not taken from "
                        "pipeline files; provide them through the environment or the "
                        "sampler's own config file (for D-Wave: DWAVE_API_TOKEN or dwave.conf)"
                    )
        return obj

    def plan(self) -> list[str]:
        cls = self.sampler_class()
        dist = _distribution(cls.__module__)
        origin = f" from {dist} {dist_version(dist)}" if dist else ""
        return [f"dimod sampler {self.options.sampler}{origin}"]

    def solve(
        self, qubo: Qubo, *, seed: int | None = None, time_limit: float | None = None
    ) -> SolveResult:
        """Sample once; ``time_limit`` is not passed on (samplers spell it differently)."""
        import dimod

        self.check_problem(qubo)
        started = time.perf_counter()
        redact_sdk_logs()  # an Ocean sampler may log its configuration, token included
        cls = self.sampler_class()
        try:
            sampler = cls(**self.options.init)
        except TypeError as exc:
            raise ConfigError(f"{self._key('init')}: {exc}") from None
        params = dict(self.options.parameters)
        accepted = dict(getattr(sampler, "parameters", {}) or {})
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ConfigError(
                f"{self._key('parameters')}: {', '.join(unknown)} not accepted by "
                f"{self.options.sampler} (it takes: {', '.join(sorted(accepted)) or 'none'})"
            )
        used_seed = None
        if "seed" in accepted:
            used_seed = choose_seed(params.get("seed"), seed)
            params["seed"] = used_seed
        if qubo.num_variables == 0:
            return self.result(qubo, np.zeros((1, 0)), started=started, seed=used_seed)
        try:
            sampleset = sampler.sample(qubo.to_bqm(), **params)
            sampleset.resolve()
        except dimod.exceptions.BinaryQuadraticModelStructureError as exc:
            raise QslmError(
                f"{self.display_name}: {self.options.sampler} is a structured sampler and the "
                f"problem does not fit its graph ({exc}); use 'dwave.qpu' for D-Wave QPUs, or "
                "wrap the sampler in an embedding composite"
            ) from None
        dist = _distribution(cls.__module__)
        info = {
            "sampler": self.options.sampler,
            "library": f"{dist} {dist_version(dist)}".strip() if dist else "",
            "num_samples": len(sampleset),
        }
        return self.result(
            qubo, sample_matrix(sampleset, qubo), started=started, seed=used_seed, info=info
        )


def _distribution(module: str) -> str:
    """The distribution that installs ``module`` (``""`` when unknown)."""
    top = module.split(".")[0]
    names = metadata.packages_distributions().get(top, [])
    if len(names) == 1:
        return names[0]
    # Namespace packages (dwave.*) are shared by several distributions: match by file.
    for name in names:
        files = metadata.distribution(name).files or []
        path = module.replace(".", "/")
        if any(str(f).startswith(path) for f in files):
            return name
    return names[0] if names else ""
