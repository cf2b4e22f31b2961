"""Testing kit for plugin authors: conformance checks for QUBO solvers, data sources,
evaluators, trainers and attention backends, small problems with
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
    "DataSourceConformance": "qslm.testing.data_sources",
    "check_dataset": "qslm.testing.data_sources",
    "check_deterministic": "qslm.testing.data_sources",
    "check_hash_follows_content": "qslm.testing.data_sources",
    "EvaluatorConformance": "qslm.testing.evaluators",
    "check_metrics": "qslm.testing.evaluators",
    "check_effects": "qslm.testing.evaluators",
    "tiny_dataset": "qslm.testing.evaluators",
    "tiny_artifact": "qslm.testing.evaluators",
    "TrainerConformance": "qslm.testing.trainers",
    "check_artifact": "qslm.testing.trainers",
    "check_resumed": "qslm.testing.trainers",
    "AttentionConformance": "qslm.testing.attention",
    "check_signature": "qslm.testing.attention",
    "check_output": "qslm.testing.attention",
    "check_masked_keys_ignored": "qslm.testing.attention",
    "make_context": "qslm.testing.kit",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qslm.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
