"""Registers ``example.greedy``. The target is a string, so listing plugins imports no numpy."""

from qslm.api import hookimpl


@hookimpl
def qslm_register_qubo_solvers(register):
    register(
        "example.greedy",
        "qslm_example_greedy.greedy:GreedySolver",
        summary="Steepest descent from random starts (an example third-party plugin)",
    )
