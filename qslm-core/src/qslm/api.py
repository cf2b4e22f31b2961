"""The public API for plugin authors: every name a plugin may import from qslm.

Import from here, not from the modules these names live in (``from qslm.api import
QuboSolver, Options, hookimpl``): the modules behind them may move between versions, these
names keep working under the compatibility policy (``docs/plugins/compatibility.md``): a name
listed in ``__all__`` is removed or changed incompatibly only in a major version, after a
minor version in which using it raises a ``DeprecationWarning``.

Importing this module is cheap, and each name is imported when first used:
``from qslm.api import hookimpl`` in a plugin's registration module imports pluggy only, so
listing plugins stays fast; no name imports torch, transformers or a quantum SDK (the testing
kits import those inside their checks).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and the API reference (griffe reads these)
    from qslm.attention.hf import install as install_attention
    from qslm.components import (
        Artifact,
        AttentionBackend,
        Component,
        Dataset,
        DataSource,
        Evaluator,
        Options,
        Trainer,
    )
    from qslm.context import RunContext
    from qslm.errors import (
        ComponentNotFound,
        ConfigError,
        MissingCredentials,
        PluginError,
        QslmError,
        RemoteTimeout,
        ServiceUnavailable,
    )
    from qslm.hookspecs import hookimpl
    from qslm.plugins import Register
    from qslm.qubo.io import read_qubo, write_qubo
    from qslm.qubo.model import Qubo
    from qslm.qubo.solver import (
        Capabilities,
        Deadline,
        ProblemTooLarge,
        QuboSolver,
        SolveResult,
        effective_time_limit,
        resolve_seed,
    )
    from qslm.resources import Estimate
    from qslm.testing.attention import AttentionConformance
    from qslm.testing.conformance import SolverConformance
    from qslm.testing.data_sources import DataSourceConformance
    from qslm.testing.evaluators import EvaluatorConformance, tiny_artifact, tiny_dataset
    from qslm.testing.kit import make_context
    from qslm.testing.plugins import check_listing_is_light, check_plugin_listed
    from qslm.testing.problems import brute_force, random_qubo
    from qslm.testing.trainers import TrainerConformance
    from qslm.tracking.base import Tracker

# name -> the module it lives in, imported on first use (PEP 562)
_EXPORTS = {
    "Artifact": "qslm.components",
    "AttentionBackend": "qslm.components",
    "Component": "qslm.components",
    "Dataset": "qslm.components",
    "DataSource": "qslm.components",
    "Evaluator": "qslm.components",
    "Options": "qslm.components",
    "Trainer": "qslm.components",
    "install_attention": "qslm.attention.hf:install",
    "RunContext": "qslm.context",
    "ComponentNotFound": "qslm.errors",
    "ConfigError": "qslm.errors",
    "MissingCredentials": "qslm.errors",
    "PluginError": "qslm.errors",
    "QslmError": "qslm.errors",
    "RemoteTimeout": "qslm.errors",
    "ServiceUnavailable": "qslm.errors",
    "hookimpl": "qslm.hookspecs",
    "Register": "qslm.plugins",
    "Qubo": "qslm.qubo.model",
    "read_qubo": "qslm.qubo.io",
    "write_qubo": "qslm.qubo.io",
    "Capabilities": "qslm.qubo.solver",
    "Deadline": "qslm.qubo.solver",
    "ProblemTooLarge": "qslm.qubo.solver",
    "QuboSolver": "qslm.qubo.solver",
    "SolveResult": "qslm.qubo.solver",
    "effective_time_limit": "qslm.qubo.solver",
    "resolve_seed": "qslm.qubo.solver",
    "Estimate": "qslm.resources",
    "AttentionConformance": "qslm.testing.attention",
    "SolverConformance": "qslm.testing.conformance",
    "DataSourceConformance": "qslm.testing.data_sources",
    "EvaluatorConformance": "qslm.testing.evaluators",
    "tiny_artifact": "qslm.testing.evaluators",
    "tiny_dataset": "qslm.testing.evaluators",
    "make_context": "qslm.testing.kit",
    "check_listing_is_light": "qslm.testing.plugins",
    "check_plugin_listed": "qslm.testing.plugins",
    "brute_force": "qslm.testing.problems",
    "random_qubo": "qslm.testing.problems",
    "TrainerConformance": "qslm.testing.trainers",
    "Tracker": "qslm.tracking.base",
}

__all__ = [  # noqa: RUF022 (grouped by topic, the order of the reference page)
    # registering components (the hooks are in qslm.hookspecs, documented in the plugin guide)
    "hookimpl",
    "Register",
    # component kinds and their data
    "Component",
    "Options",
    "DataSource",
    "Dataset",
    "AttentionBackend",
    "QuboSolver",
    "Trainer",
    "Artifact",
    "Estimate",
    "Evaluator",
    "Tracker",
    # QUBO problems and results
    "Qubo",
    "read_qubo",
    "write_qubo",
    "SolveResult",
    "Capabilities",
    "Deadline",
    "resolve_seed",
    "effective_time_limit",
    # the run a component is called in, and the attention backend a trainer installs
    "RunContext",
    "install_attention",
    # errors (exit code 2: the user's mistake; 1: a failure at run time)
    "QslmError",
    "ConfigError",
    "PluginError",
    "ComponentNotFound",
    "MissingCredentials",
    "ProblemTooLarge",
    "ServiceUnavailable",
    "RemoteTimeout",
    # the testing kit
    "SolverConformance",
    "DataSourceConformance",
    "EvaluatorConformance",
    "TrainerConformance",
    "AttentionConformance",
    "make_context",
    "tiny_dataset",
    "tiny_artifact",
    "random_qubo",
    "brute_force",
    "check_plugin_listed",
    "check_listing_is_light",
]


# Names on their way out: old name -> (module[:attr], what to use instead). A name stays here,
# working and raising a DeprecationWarning, for at least one minor version before a major
# version removes it (docs/plugins/compatibility.md).
_DEPRECATED: dict[str, tuple[str, str]] = {}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None and name in _DEPRECATED:
        import warnings

        module, instead = _DEPRECATED[name]
        warnings.warn(
            f"qslm.api.{name} is deprecated and goes in the next major version; {instead}",
            DeprecationWarning,
            stacklevel=2,
        )
    if module is None:
        raise AttributeError(f"module 'qslm.api' has no attribute {name!r}")
    module, _, attr = module.partition(":")  # "module:attr" names it differently there
    value = getattr(importlib.import_module(module), attr or name)
    if name in _EXPORTS:
        globals()[name] = value  # the next lookup is a plain global (a deprecated one warns)
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
