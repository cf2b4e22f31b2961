"""Registers the built-in QUBO solvers. Targets are strings, so nothing here imports numpy,
scipy or dimod."""

from qslm.hookspecs import hookimpl


@hookimpl
def qslm_register_qubo_solvers(register):
    register(
        "exact",
        "qslm.qubo.exact:ExactSolver",
        summary="Exhaustive enumeration in numpy blocks: the true optimum, up to 26 variables",
    )
    register(
        "anneal",
        "qslm.qubo.anneal:AnnealSolver",
        summary="Simulated annealing, all reads advancing together in numpy",
    )
    register(
        "tabu",
        "qslm.qubo.tabu:TabuSolver",
        summary="One-flip tabu search with aspiration and restarts, chains vectorised in numpy",
    )
