"""The qslm plugin module of qslm-backend-azure.

Entry point: ``qslm = "azure = qslm_azure.plugin"``. Targets are strings, so listing plugins
never imports the Azure SDK or Qiskit.
"""

from qslm.api import hookimpl


@hookimpl
def qslm_register_qubo_solvers(register):
    register(
        "azure.ionq",
        "qslm_azure.solver:IonQSolver",
        summary="QAOA sampled on IonQ through Azure Quantum (angles tuned locally)",
    )
    register(
        "azure.quantinuum",
        "qslm_azure.solver:QuantinuumSolver",
        summary="QAOA sampled on Quantinuum through Azure Quantum (angles tuned locally)",
    )
    register(
        "azure.rigetti",
        "qslm_azure.solver:RigettiSolver",
        summary="QAOA sampled on Rigetti through Azure Quantum (angles tuned locally)",
    )
