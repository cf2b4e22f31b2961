"""Talking to Azure Quantum: retries of transient faults, and one job's life (submit, watch,
fetch, cancel).

Every remote step runs through :meth:`Remote.call`, the core's :mod:`qslm.remote` helper told
which Azure faults may pass: at most ``retries`` retries of a fault that may pass (HTTP
408/429/5xx, dropped or reset connections), waiting ``retry_backoff`` seconds doubling up to
``retry_max_backoff`` (or the service's ``Retry-After`` when longer), never past the solver's
deadline. Anything else is permanent and raised at once as
:class:`~qslm.errors.ServiceUnavailable` (a solver portfolio then tries its fallback)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from qslm.api import ConfigError, Deadline, RemoteTimeout, ServiceUnavailable
from qslm.remote import Fault, RetryPolicy
from qslm.remote import Remote as CoreRemote
from qslm_azure.workspace import HOW_TO_PROVIDE, redact

log = logging.getLogger("qslm_azure.jobs")
_sleep = time.sleep  # looked up at each wait, so tests can record the backoff

TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
DONE = {"Succeeded", "Completed"}
ENDED = DONE | {"Failed", "Cancelled"}


class CredentialsRejected(ConfigError):
    """Azure refused the workspace's key or token (HTTP 401/403)."""


def text(value: Any) -> str:
    """An SDK enum (``JobStatus.SUCCEEDED``) or string as its plain value (``Succeeded``)."""
    return str(getattr(value, "value", value) or "")


def status_code(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    if code is None:
        code = getattr(getattr(exc, "response", None), "status_code", None)
    return int(code) if isinstance(code, int) else None


def is_transient(exc: BaseException) -> bool:
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, ClientAuthenticationError):
        return False
    if isinstance(exc, ServiceRequestError | ServiceResponseError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, HttpResponseError):
        return status_code(exc) in TRANSIENT_STATUS
    return False


def retry_after(exc: BaseException) -> float | None:
    """The service's ``Retry-After`` (seconds), if the failed response had one."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def describe(exc: BaseException) -> str:
    """``"HttpResponseError: (503) busy"`` with keys and SAS signatures scrubbed."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    code = status_code(exc)
    if code and str(code) not in text:
        text = f"{text} (HTTP {code})"
    return redact(f"{type(exc).__name__}: {text}")


class Remote(CoreRemote):
    """The remote steps of one solve under one deadline, counting retries (the core's
    :class:`qslm.remote.Remote`, told which Azure faults may pass)."""

    thread_name = "qslm-azure-remote"

    def __init__(self, solver: str, options: Any, deadline: Deadline) -> None:
        o = options
        super().__init__(
            solver,
            deadline,
            RetryPolicy(o.retries, o.retry_backoff, o.retry_max_backoff),
            attempt_timeout=o.request_timeout,
            log=log,
            sleep=lambda seconds: _sleep(seconds),  # looked up at each wait (tests)
        )
        self.solver = solver
        self.options = options

    def classify(self, exc: Exception, what: str) -> Fault | None:
        if not _azure_error(exc):
            return None
        fault = describe(exc)
        if status_code(exc) in (401, 403):
            rejected = CredentialsRejected(
                f"{self.solver}: Azure Quantum refused the credentials while trying to "
                f"{what} ({fault}); check them: {HOW_TO_PROVIDE}"
            )
            return Fault(fault, transient=False, error=rejected)
        if not is_transient(exc):
            return Fault(fault, transient=False)
        return Fault(fault, transient=True, retry_after=retry_after(exc))


def _azure_error(exc: BaseException) -> bool:
    from azure.core.exceptions import AzureError

    return isinstance(exc, AzureError | ConnectionError | TimeoutError)


class JobWatcher:
    """Submits one job through the SDK's target, watches it, fetches its result, and cancels
    it on timeout, interrupt or any failure after submission."""

    def __init__(
        self,
        remote: Remote,
        workspace: Any,
        report: Callable[[str], None],
    ) -> None:
        self.remote = remote
        self.workspace = workspace
        self.report = report
        self.job: Any = None
        self.statuses: list[str] = []
        self.cancelled = False

    @property
    def job_id(self) -> str | None:
        return None if self.job is None else self.job.id

    def target(self, name: str) -> Any:
        """The SDK's Target object for ``name``, with its availability and queue time."""
        found = self.remote.call(
            f"look up target {name!r}", lambda: self.workspace.get_targets(name=name)
        )
        if not found:
            raise ServiceUnavailable(
                f"{self.remote.solver}: the workspace has no target {name!r}; add its provider "
                "to the workspace (Azure portal: the workspace > Providers)"
            )
        availability = text(getattr(found, "_current_availability", ""))
        queue = getattr(found, "_average_queue_time", None)
        self.report(
            f"target {name}: {availability or 'availability unknown'}"
            + (f", average queue {queue} s" if queue is not None else "")
        )
        if str(availability).lower() == "unavailable":
            raise ServiceUnavailable(f"{self.remote.solver}: target {name!r} is unavailable")
        return found

    def run(self, target: Any, payload: Any, *, shots: int, name: str, poll: tuple) -> Any:
        """Submit ``payload`` to ``target``, wait for the job and return its decoded result.
        ``poll`` is (first interval, largest interval) in seconds."""
        from azure.quantum.job import Job

        job_id = Job.create_job_id()
        try:
            # Uploading the input and creating the job are separate steps: a retried upload
            # reuses the job id and container, and the job PUT is idempotent by id.
            self.job = self.remote.call(
                "upload the circuit",
                lambda: target.submit(
                    payload, name=name, shots=shots, job_id=job_id, submit_job=False
                ),
            )
            self.remote.call("submit the job", self.job.submit)
            self.report(f"job {self.job.id} submitted to {target.name} ({shots} shots)")
            self._wait(poll)
            return self.remote.call("download the result", self.job.get_results)
        except KeyboardInterrupt:
            self.cancel("interrupted")
            raise
        except RemoteTimeout:
            self.cancel("time limit")
            raise
        except BaseException as exc:
            # A job left running would still be billed: cancel it unless it already ended.
            self.cancel(type(exc).__name__)
            raise

    def _wait(self, poll: tuple) -> None:
        interval, largest = poll
        last = None
        while True:
            self.remote.call("poll the job", self.job.refresh)
            status = text(self.job.details.status)
            if status != last:
                self.statuses.append(status)
                self.report(f"job {self.job.id}: {status}")
                last = status
            if status in ENDED:
                break
            if self.remote.deadline.remaining() <= interval:
                raise RemoteTimeout(
                    f"{self.remote.solver}: job {self.job.id} did not finish within the time "
                    f"limit (last status {status})"
                )
            _sleep(interval)
            interval = min(largest, interval * 1.5)
        if status not in DONE:
            error = self.job.details.error_data
            why = f": {error.code}: {error.message}" if error is not None else ""
            raise ServiceUnavailable(
                redact(f"{self.remote.solver}: job {self.job.id} ended {status}{why}")
            )

    def cancel(self, why: str) -> None:
        """Ask the service to cancel the job (best effort: it may have ended meanwhile)."""
        if self.job is None or self.cancelled or (self.statuses and self.statuses[-1] in ENDED):
            return
        with contextlib.suppress(Exception):
            self.remote.bounded(
                lambda: self.workspace.cancel_job(self.job),
                min(10.0, self.remote.options.request_timeout),
                "cancel",
            )
            self.cancelled = True
            self.report(f"job {self.job.id}: cancellation requested ({why})")
