"""IBM Quantum hardware through qiskit-ibm-runtime: credentials, the backend, watched jobs.

The token comes only from the environment (``QISKIT_IBM_TOKEN``) or an account saved with
``QiskitRuntimeService.save_account``; qslm never takes one in its options. Without either,
:func:`require_credentials` fails at once without importing the runtime or touching the
network. Every message that could carry the token passes through :func:`redact`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qslm.api import ConfigError
from qslm.secrets import Redactor
from qslm_qiskit.errors import MissingCredentials, RemoteTimeout, ServiceUnavailable

TOKEN_ENV = "QISKIT_IBM_TOKEN"
ACCOUNT_FILE = Path("~/.qiskit/qiskit-ibm.json")

HOW_TO_PROVIDE = (
    "set the environment variable QISKIT_IBM_TOKEN to your IBM Quantum API key, or save an "
    "account once with `QiskitRuntimeService.save_account(token=..., instance=...)`"
)

_redactor = Redactor((TOKEN_ENV,))


@dataclass(frozen=True)
class Credentials:
    """Where the token is, in words, and the token itself (never printed: repr hides it)."""

    where: str
    token: str | None  # None: the saved account, which the runtime reads itself

    def __repr__(self) -> str:
        return f"Credentials(where={self.where!r})"


def redact(text: str) -> str:
    """``text`` with every token seen in this process replaced by ``***``."""
    return _redactor.redact(text)


def account_file() -> Path:
    return ACCOUNT_FILE.expanduser()


def find_credentials() -> Credentials | None:
    """The token's source, or None: reads the environment and the saved-account file only."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        _redactor.remember(token)
        return Credentials(f"the environment variable {TOKEN_ENV}", token)
    path = account_file()
    if path.is_file() and path.stat().st_size > 2:  # "{}" is what an emptied file holds
        return Credentials(f"the saved Qiskit account in {path}", None)
    return None


def require_credentials(solver: str) -> Credentials:
    """The credentials, or :class:`MissingCredentials` at once (nothing sent)."""
    found = find_credentials()
    # the runtime's own loggers may print request details; keep the token out of them too
    _redactor.scrub_logs("qiskit_ibm_runtime", "qslm_qiskit")
    if found is None:
        raise MissingCredentials(
            f"{solver}: no IBM Quantum token found: looked in the environment variable "
            f"{TOKEN_ENV} and for a saved account in {account_file()}; {HOW_TO_PROVIDE}. "
            "Nothing was sent to IBM Quantum."
        )
    return found


def describe_credentials() -> str:
    """One line for ``qslm validate``."""
    found = find_credentials()
    if found is None:
        return (
            "credentials: none found, so this solver fails at once (a fallback solver, if "
            f"any, runs instead); set {TOKEN_ENV} or save a Qiskit account"
        )
    return f"credentials: IBM Quantum token from {found.where}"


def connect(credentials: Credentials, backend: str, instance: str | None, *, timeout: float) -> Any:
    """The IBM backend object named ``backend``, fetched from the service (network) within
    ``timeout`` seconds; errors redacted."""
    try:
        import qiskit_ibm_runtime  # noqa: F401 (checked here so the message can say what to do)
    except ImportError:
        raise ConfigError(
            "IBM hardware needs qiskit-ibm-runtime: pip install 'qslm-backend-qiskit[ibm]'"
        ) from None
    outcome: dict[str, Any] = {}

    def fetch() -> None:
        try:
            outcome["backend"] = open_backend(credentials, backend, instance)
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    # A daemon thread: a service that never answers must not keep the process alive.
    worker = threading.Thread(target=fetch, name="qslm-ibm-connect", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise RemoteTimeout(
            f"IBM Quantum did not answer within {timeout:.3g} s while fetching backend {backend!r}"
        )
    if "error" in outcome:
        exc = outcome["error"]
        raise ServiceUnavailable(
            f"IBM Quantum: could not get backend {backend!r}: {type(exc).__name__}: "
            f"{redact(str(exc))}"
        ) from None
    return outcome["backend"]


def open_backend(credentials: Credentials, backend: str, instance: str | None) -> Any:
    """The runtime service's backend object (the seam tests replace)."""
    from qiskit_ibm_runtime import QiskitRuntimeService

    kwargs: dict[str, Any] = {"instance": instance} if instance else {}
    if credentials.token is not None:
        kwargs.update(channel="ibm_quantum_platform", token=credentials.token)
    return QiskitRuntimeService(**kwargs).backend(backend)


def wait_for(
    job: Any,
    *,
    timeout: float,
    on_status: Callable[[str], None] | None = None,
    poll_s: float = 2.0,
) -> Any:
    """The job's result, polling its status (every 50 ms at first, backing off to
    ``poll_s``); cancelled on timeout or interrupt."""
    started = time.monotonic()
    last = None
    wait = 0.05
    try:
        while True:
            status = str(getattr(job.status(), "name", job.status()))
            if status != last and on_status is not None:
                on_status(status)
            last = status
            if status in ("DONE", "ERROR", "CANCELLED"):
                break
            if time.monotonic() - started > timeout:
                _cancel(job)
                raise RemoteTimeout(
                    f"IBM Quantum job {job.job_id()} did not finish within {timeout:g} s "
                    f"(last status {status}); it was cancelled"
                )
            time.sleep(wait)
            wait = min(poll_s, wait * 2)
    except KeyboardInterrupt:
        _cancel(job)
        raise
    if last != "DONE":
        raise ServiceUnavailable(f"IBM Quantum job {job.job_id()} ended with status {last}")
    try:
        return job.result()
    except Exception as exc:
        raise ServiceUnavailable(
            f"IBM Quantum job {job.job_id()} failed: {type(exc).__name__}: {redact(str(exc))}"
        ) from None


def _cancel(job: Any) -> None:
    # The job may have finished meanwhile; the caller's error says enough either way.
    with contextlib.suppress(Exception):
        job.cancel()
