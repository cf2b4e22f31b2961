"""Calling Leap: options shared by the remote solvers, capped exponential backoff for transient
faults, bounded waits, and the SDK's exceptions turned into qslm errors.

Every remote step (fetching the solver, submitting, waiting for the answer) runs through
:meth:`Remote.call`, the core's :mod:`qslm.remote` helper told which dwave-cloud faults may
pass: it never waits longer than the solver's ``timeout`` or the caller's time limit, retries
only faults that may pass (timeouts, 429 and 5xx answers, dropped connections, an offline
solver) and raises :class:`ServiceUnavailable` or :class:`RemoteTimeout`, both
:class:`~qslm.errors.QslmError`, which a solver portfolio records before trying its next
solver."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from pydantic import Field, model_validator

from qslm.api import ConfigError, Deadline, Options
from qslm.remote import Fault, RetryPolicy
from qslm.remote import Remote as CoreRemote
from qslm_dwave.credentials import HOW_TO_PROVIDE, redact
from qslm_dwave.errors import CredentialsRejected, RemoteTimeout, ServiceUnavailable

log = logging.getLogger("qslm_dwave.remote")
_sleep = time.sleep  # looked up at each retry, so tests can record the backoff

# Our own retries replace most of the cloud client's HTTP retries (10 by default, which make a
# dead endpoint take ~12 s before our backoff even starts).
_CLIENT_HTTP_RETRIES = 2


class RemoteOptions(Options):
    """Options every Leap solver has: which solver, and how hard to try."""

    solver: str | None = Field(
        default=None,
        description="A solver name, e.g. 'Advantage_system4.1'; default: dwave's config "
        "(DWAVE_API_SOLVER or the config file), else the solver's own choice.",
    )
    region: str | None = Field(default=None, description="Leap region, e.g. 'na-west-1'.")
    profile: str | None = Field(default=None, description="Profile of the dwave.conf file to read.")
    label: str = Field(
        default="qslm", max_length=200, description="Problem label shown in the Leap dashboard."
    )
    retries: int = Field(
        default=3, ge=0, le=10, description="Retries of a step after a transient fault."
    )
    retry_backoff: float = Field(
        default=1.0, ge=0, le=60, description="Seconds before the first retry; doubles after each."
    )
    retry_max_backoff: float = Field(
        default=30.0, ge=0, le=600, description="Cap on the wait between retries."
    )
    timeout: float = Field(
        default=300.0,
        gt=0,
        description="Longest wait in seconds for one remote step (connecting, queueing, running).",
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> RemoteOptions:
        if self.retry_max_backoff < self.retry_backoff:
            raise ValueError("retry_max_backoff must be at least retry_backoff")
        return self


def client_config(options: RemoteOptions, wait: float, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for a dwave-system sampler (and so ``Client.from_config``); only
    options that are set, so dwave's config files and environment still apply."""
    config: dict[str, Any] = {
        "request_timeout": max(1.0, min(60.0, wait)),
        "polling_timeout": max(1.0, wait),
        "http_retry_total": _CLIENT_HTTP_RETRIES,
    }
    for key in ("solver", "region", "profile"):
        value = getattr(options, key)
        if value is not None:
            config[key] = value
    config.update(extra)
    return config


def build_sampler(make: Any, config: dict[str, Any]) -> Any:
    """``make(config)``: a dwave-system sampler, a bad dwave configuration becoming a
    :class:`~qslm.errors.ConfigError`."""
    try:
        return make(config)
    except ValueError as exc:  # e.g. "API endpoint not defined", a solver of the wrong kind
        raise ConfigError(f"D-Wave configuration: {redact(str(exc))}") from None


def close_sampler(sampler: Any) -> None:
    """Release the cloud client's threads without waiting for abandoned work."""
    client = getattr(sampler, "client", None)
    if client is None:
        return
    with contextlib.suppress(Exception):  # housekeeping; the answer is already in hand
        client.close(wait=False)


def _transient(exc: BaseException) -> bool:
    import requests
    from dwave.cloud import exceptions as ex
    from dwave.cloud.api import exceptions as api

    permanent = (
        api.ResourceAuthenticationError,
        api.ResourceAccessForbiddenError,
        api.ResourceNotFoundError,
        api.ResourceBadRequestError,
        ex.SolverFailureError,
        ex.InvalidProblemError,
        # The problem may still be running: resubmitting it would pay for it twice.
        ex.PollingTimeout,
    )
    if isinstance(exc, permanent):
        return False
    transient = (
        api.RequestTimeout,
        api.InternalServerError,
        api.ResourceLimitsExceededError,
        api.ResourceConflictError,
        ex.ProblemUploadError,
        ex.SolverOfflineError,
        ex.InvalidAPIResponseError,
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        ConnectionError,
        TimeoutError,
    )
    return isinstance(exc, transient)


def _sdk_error(exc: BaseException) -> bool:
    import requests

    return isinstance(exc, requests.exceptions.RequestException) or type(exc).__module__.startswith(
        "dwave.cloud"
    )


def describe(exc: BaseException) -> str:
    """``"RequestTimeout: API request timed out"`` with any token scrubbed."""
    text = str(exc) or (type(exc).__doc__ or "").strip()
    code = getattr(exc, "error_code", None)
    if code and str(code) not in text:
        text = f"{text} (HTTP {code})"
    return redact(f"{type(exc).__name__}: {text}")


class Remote(CoreRemote):
    """Runs the remote steps of one solve under one deadline, counting retries (the core's
    :class:`qslm.remote.Remote`, told which dwave-cloud faults may pass)."""

    unavailable = ServiceUnavailable
    timed_out = RemoteTimeout
    thread_name = "qslm-dwave-remote"

    def __init__(self, solver: str, options: RemoteOptions, deadline: Deadline) -> None:
        policy = RetryPolicy(options.retries, options.retry_backoff, options.retry_max_backoff)
        super().__init__(
            solver,
            deadline,
            policy,
            attempt_timeout=options.timeout,
            log=log,
            sleep=lambda seconds: _sleep(seconds),  # looked up at each retry (tests)
        )
        self.solver = solver
        self.options = options

    def wait_limit(self, extra: float = 0.0) -> float:
        """Seconds a step may take: the ``timeout`` option (plus ``extra``), or the time left."""
        return min(self.options.timeout + extra, self.deadline.remaining())

    def classify(self, exc: Exception, what: str) -> Fault | None:
        if not _sdk_error(exc):  # our own errors, and bugs, go up as they are
            return None
        fault = describe(exc)
        if not _transient(exc):
            return Fault(fault, transient=False, error=self._permanent(what, exc, fault))
        return Fault(fault, transient=True)

    def _permanent(self, what: str, exc: BaseException, fault: str) -> Exception:
        from dwave.cloud import exceptions as ex
        from dwave.cloud.api import exceptions as api

        if isinstance(exc, ex.PollingTimeout):
            return RemoteTimeout(
                f"{self.solver}: no answer in time while trying to {what} ({fault})"
            )

        if isinstance(exc, api.ResourceAuthenticationError | api.ResourceAccessForbiddenError):
            return CredentialsRejected(
                f"{self.solver}: D-Wave rejected the API token while trying to {what} "
                f"({fault}); check it: {HOW_TO_PROVIDE}"
            )
        return ServiceUnavailable(f"{self.solver}: could not {what}: {fault}")
