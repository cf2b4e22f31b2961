"""QUBO model, formulation helpers and built-in solvers.

The main names are importable from here (lazily, so that importing ``qslm.qubo.plugin`` stays
cheap): ``Qubo``, ``QuboSolver``, ``SolveResult``, ``Capabilities``, ``read_problem``,
``solve_with_fallback``, ``solve_race``, ``maxcut_qubo``, ``read_gset``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Qubo": "qslm.qubo.model",
    "QuboSolver": "qslm.qubo.solver",
    "SolveResult": "qslm.qubo.solver",
    "Capabilities": "qslm.qubo.solver",
    "ProblemTooLarge": "qslm.qubo.solver",
    "read_problem": "qslm.qubo.io",
    "read_qubo": "qslm.qubo.io",
    "read_json": "qslm.qubo.io",
    "write_qubo": "qslm.qubo.io",
    "write_json": "qslm.qubo.io",
    "solve_with_fallback": "qslm.qubo.portfolio",
    "solve_race": "qslm.qubo.portfolio",
    "Graph": "qslm.qubo.maxcut",
    "maxcut_qubo": "qslm.qubo.maxcut",
    "read_gset": "qslm.qubo.maxcut",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qslm.qubo' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
