"""Hook specifications of the ``qslm`` plugin project.

Each component kind has one registration hook. An implementation calls ``register`` once per
component it provides::

    @hookimpl
    def qslm_register_qubo_solvers(register):
        register("my.solver", "my_package.solver:MySolver", summary="What it does")

The target is a class or a ``"module:Class"`` string; strings are imported only when a
pipeline uses the component, so listing plugins stays cheap. Every hook is called for every
plugin (no first-result short-circuit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from qslm.plugins import Register

hookspec = pluggy.HookspecMarker("qslm")
hookimpl = pluggy.HookimplMarker("qslm")
"""Marks a plugin's function as the implementation of a ``qslm`` hook: ``@hookimpl``."""


@hookspec
def qslm_register_data_sources(register: Register) -> None:
    """Register data sources: components that turn files or datasets into training records.

    :param register: ``register(name, target, summary="")``.

    .. versionadded:: 0.1
    """


@hookspec
def qslm_register_attention_backends(register: Register) -> None:
    """Register attention backends: callables with the Hugging Face attention signature.

    :param register: ``register(name, target, summary="")``.

    .. versionadded:: 0.1
    """


@hookspec
def qslm_register_qubo_solvers(register: Register) -> None:
    """Register QUBO solvers: components that take a ``Qubo`` and return a solve result.

    :param register: ``register(name, target, summary="")``.

    .. versionadded:: 0.1
    """


@hookspec
def qslm_register_trainers(register: Register) -> None:
    """Register trainers: components that turn records into a model in the build directory.

    :param register: ``register(name, target, summary="")``.

    .. versionadded:: 0.1
    """


@hookspec
def qslm_register_evaluators(register: Register) -> None:
    """Register evaluators: components that measure a trained model and return named metrics.

    :param register: ``register(name, target, summary="")``.

    .. versionadded:: 0.1
    """


@hookspec
def qslm_register_trackers(register: Register) -> None:
    """Register experiment trackers: components that record a run's parameters, metrics and
    artifacts in a tracking service (MLflow, TensorBoard, W&B, ...).

    :param register: ``register(name, target, summary="")``.

    .. versionadded:: 0.1
    """


@hookspec
def qslm_register_commands(cli: click.Group) -> None:
    """Add commands to the ``qslm`` command group. Import heavy libraries inside the command.

    :param cli: the top-level click group.

    .. versionadded:: 0.1
    """
