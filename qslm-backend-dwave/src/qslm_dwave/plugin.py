"""The qslm plugin module of qslm-backend-dwave.

Entry point: ``qslm = "dwave = qslm_dwave.plugin"``. Targets are strings, so listing plugins
never imports dimod or the Ocean SDK.
"""

from qslm.api import hookimpl


@hookimpl
def qslm_register_qubo_solvers(register):
    register(
        "dwave.exact",
        "qslm_dwave.samplers:ExactSolver",
        summary="dimod's ExactSolver: every assignment enumerated, up to 20 variables",
    )
    register(
        "dwave.sa",
        "qslm_dwave.samplers:SimulatedAnnealing",
        summary="dwave-samplers' SimulatedAnnealingSampler",
    )
    register(
        "dwave.tabu",
        "qslm_dwave.samplers:Tabu",
        summary="dwave-samplers' TabuSampler (multistart tabu search)",
    )
    register(
        "dwave.qpu",
        "qslm_dwave.qpu:QpuSolver",
        summary="A D-Wave QPU through minor embedding (Leap; needs DWAVE_API_TOKEN)",
    )
    register(
        "dwave.hybrid",
        "qslm_dwave.hybrid:HybridSolver",
        summary="Leap's hybrid BQM solver (needs DWAVE_API_TOKEN)",
    )
    register(
        "dwave.sampler",
        "qslm_dwave.external:ExternalSampler",
        summary="Any installed dimod sampler, named 'module:Class'",
    )
