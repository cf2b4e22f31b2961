"""qslm: small language models with pluggable classical, simulated-quantum and hardware parts."""

__version__ = "0.1.0"
