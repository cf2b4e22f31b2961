"""The qslm plugin module of qslm-backend-qiskit.

Entry point: ``qslm = "qiskit = qslm_qiskit.plugin"``: the solver ``qiskit.qaoa`` and the
attention backend ``qiskit.sampled``. Targets are strings, so listing plugins
never imports Qiskit.
"""

from qslm.api import hookimpl


@hookimpl
def qslm_register_qubo_solvers(register):
    register(
        "qiskit.qaoa",
        "qslm_qiskit.qaoa:QaoaSolver",
        summary="QAOA on Qiskit: statevector, Aer with noise, IBM fake backends or hardware",
    )


@hookimpl
def qslm_register_attention_backends(register):
    register(
        "qiskit.sampled",
        "qslm_qiskit.sampled:QiskitSampledAttention",
        summary="Attention weights from shots of amplitude-encoded rows on Aer, optional noise",
    )
