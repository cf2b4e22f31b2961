"""The qslm plugin module of qslm-solver-openjij.

Entry point: ``qslm = "openjij = qslm_openjij.plugin"``. Targets are strings, so listing
plugins never imports openjij.
"""

from qslm.api import hookimpl


@hookimpl
def qslm_register_qubo_solvers(register):
    register(
        "openjij.sa",
        "qslm_openjij.samplers:OpenJijSA",
        summary="OpenJij's SASampler (simulated annealing, C++)",
    )
    register(
        "openjij.sqa",
        "qslm_openjij.samplers:OpenJijSQA",
        summary="OpenJij's SQASampler (path-integral simulated quantum annealing, C++)",
    )
