"""The expected failures of the Qiskit solver, in qslm's error family (one message, no
traceback; a solver portfolio records them and moves on)."""

from __future__ import annotations

from qslm import errors as core


class MissingCredentials(core.MissingCredentials):
    """No IBM Quantum token in QISKIT_IBM_TOKEN or in a saved Qiskit account."""


class RemoteTimeout(core.RemoteTimeout):
    """An IBM Quantum job did not finish within the time allowed (it was cancelled)."""


class ServiceUnavailable(core.ServiceUnavailable):
    """IBM Quantum refused or failed the request (unknown backend, failed job, network)."""
