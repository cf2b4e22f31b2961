"""Certified QUBO optima for qslm: the QUBO as a mixed-integer program solved by HiGHS."""

__version__ = "0.1.0"
