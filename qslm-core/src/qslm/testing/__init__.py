"""Testing kit for plugin authors: conformance checks for QUBO solvers, small problems with
known answers, checks that a plugin is found and listing stays light, and pytest fixtures
(the ``qslm`` pytest plugin).

``from qslm.testing import SolverConformance`` and inherit it in a ``Test*`` class; see
:mod:`qslm.testing.conformance`. Names are imported lazily, so the pytest plugin, loaded in
every pytest run where qslm-core is installed, stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SolverConformance": "qslm.testing.conformance",
    "make_solver": "qslm.testing.conformance",
    "check_protocol": "qslm.testing.conformance",
    "check_result": "qslm.testing.conformance",
    "check_optimum": "qslm.testing.conformance",
    "check_empty": "qslm.testing.conformance",
    "check_one_variable": "qslm.testing.conformance",
    "check_seeded": "qslm.testing.conformance",
    "check_time_limit": "qslm.testing.conformance",
    "check_too_large": "qslm.testing.conformance",
    "random_qubo": "qslm.testing.problems",
    "brute_force": "qslm.testing.problems",
    "all_assignments": "qslm.testing.problems",
    "check_plugin_listed": "qslm.testing.plugins",
    "check_listing_is_light": "qslm.testing.plugins",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qslm.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
