"""OpenJij's samplers (SA, SQA) as qslm QUBO solvers."""

__version__ = "0.1.0"
