"""QUBO solvers on D-Wave Ocean for qslm."""

__version__ = "0.1.0"
