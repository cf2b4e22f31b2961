"""QUBO solving on Azure Quantum targets for qslm."""

__version__ = "0.1.0"
