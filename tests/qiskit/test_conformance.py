"""qiskit.qaoa passes qslm's solver conformance kit on the exact statevector and on Aer."""

from __future__ import annotations

from qslm.testing import SolverConformance


class TestQaoaStatevector(SolverConformance):
    solver = "qiskit.qaoa"
    # The problems here have at most 12 variables; 1024 shots of a tuned reps-2 circuit.
    solver_options = {"reps": 2, "maxiter": 60}
    # Angles are tuned between estimator calls; a call on 10 qubits takes milliseconds.
    time_limit_variables = 10
    # The kit's 20 variables take minutes on a statevector (about 4 s an estimator call and
    # 27 s a sampling on this machine); the same check at 10 variables.
    seeded_variables = 10


class TestQaoaAer(SolverConformance):
    solver = "qiskit.qaoa"
    solver_options = {"backend": "aer", "reps": 1, "maxiter": 40}
    time_limit_variables = 10
    seeded_variables = 10
