"""An example third-party qslm plugin: the QUBO solver ``example.greedy``."""

__version__ = "0.1.0"
