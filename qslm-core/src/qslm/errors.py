"""The expected-failure family: shown to the user as one message, without a traceback.

Anything that is not a :class:`QslmError` is a bug and keeps its traceback.
"""

from __future__ import annotations


class QslmError(Exception):
    """An expected runtime failure (exit code 1): a dead service, a failed solver, a full disk."""

    exit_code = 1


class ConfigError(QslmError):
    """A usage or configuration mistake (exit code 2): the message names the file and key."""

    exit_code = 2


class PluginError(QslmError):
    """A plugin could not be loaded or two plugins claim the same name (exit code 2)."""

    exit_code = 2


class ComponentNotFound(ConfigError):
    """A pipeline names a component no installed plugin provides."""


class MissingCredentials(ConfigError):
    """A remote component has no credentials; the message says where it looked and how to
    provide them. Raised before any work or network use."""


class ServiceUnavailable(QslmError):
    """A remote service failed or refused the request, and kept failing through every retry."""


class RemoteTimeout(QslmError):
    """A remote job did not finish within the time allowed (it was cancelled where possible)."""
