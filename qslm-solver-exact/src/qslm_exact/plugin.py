"""The qslm plugin module of qslm-solver-exact.

Entry point: ``qslm = "exact = qslm_exact.plugin"``. The target is a string, so listing
plugins never imports highspy.
"""

from qslm.api import hookimpl


@hookimpl
def qslm_register_qubo_solvers(register):
    register(
        "exact.highs",
        "qslm_exact.highs:HighsSolver",
        summary="The QUBO linearised as a MIP on HiGHS: the optimum with a proof, or a bound "
        "and gap at the time limit",
    )
