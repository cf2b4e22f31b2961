"""QAOA QUBO solver and circuit-sampled attention on Qiskit for qslm."""

__version__ = "0.1.0"
