"""pytest plugin of qslm-core (entry point ``pytest11``): fixtures for plugin authors.

Loaded by every pytest run in an environment with qslm-core, so it imports nothing heavy at
the top: numpy and qslm's QUBO modules are imported inside the fixtures that use them.

Fixtures: ``random_qubo`` (a factory: ``random_qubo(n, sense="min", seed=0, density=0.5,
offset=0.0)``), ``brute_force`` (``brute_force(qubo) -> (best_energy, best_sample)``) and
``qubo_solver`` (a factory: ``qubo_solver("anneal", num_reads=8)`` from the installed
plugins) and ``no_network`` (opening a connection fails the test). The conformance suite
is a base class: ``from qslm.testing import SolverConformance``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def random_qubo() -> Callable[..., Any]:
    """Factory of random Qubo problems (seeded)."""
    from qslm.testing.problems import random_qubo as factory

    return factory


@pytest.fixture
def brute_force() -> Callable[..., Any]:
    """Optimal energy and sample of a small Qubo, by enumeration."""
    from qslm.testing.problems import brute_force as solve

    return solve


@pytest.fixture
def qubo_solver() -> Callable[..., Any]:
    """Factory: a registered QUBO solver by name, with options as keyword arguments."""
    from qslm.testing.conformance import make_solver

    def make(name: str, **options: Any) -> Any:
        return make_solver(name, options)

    return make


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Any attempt to open a network connection fails the test; returns the addresses tried.

    For remote solvers: "missing credentials fail at once, before any network use"."""
    import socket

    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any, *args: Any, **kwargs: Any) -> None:
        attempts.append(address)
        raise AssertionError(f"network use: connect to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts
