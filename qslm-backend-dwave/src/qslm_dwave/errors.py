"""The expected failures of the D-Wave solvers, in qslm's error family.

Each is a :class:`~qslm.errors.QslmError`, so the CLI prints one message without a traceback
and a solver portfolio records the failure and moves on to the next solver.
"""

from __future__ import annotations

from qslm import errors as core
from qslm.api import ConfigError, ProblemTooLarge, QslmError


class MissingCredentials(core.MissingCredentials):
    """No D-Wave API token in the environment or in dwave's configuration files."""


class ServiceUnavailable(core.ServiceUnavailable):
    """The Leap service failed, and kept failing through every retry, or refused the request."""


class RemoteTimeout(core.RemoteTimeout):
    """The remote solver did not answer within the time allowed."""


class EmbeddingImpossible(ProblemTooLarge):
    """The problem cannot be minor-embedded on the QPU's graph (refused before any QPU time)."""


class EmbeddingNotFound(QslmError):
    """The embedding heuristics found no minor embedding within their time (one may exist)."""


class CredentialsRejected(ConfigError):
    """D-Wave refused the configured API token (invalid, expired or without access)."""
