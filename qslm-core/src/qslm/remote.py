"""Calling a remote service from a component: one deadline, a bounded wait per attempt, capped
exponential backoff with optional jitter, retries of the faults the backend marks transient
(honouring the service's ``Retry-After``), and cancellation.

A backend subclasses :class:`Remote` and implements :meth:`Remote.classify`, which says for
each exception of its SDK whether it may pass (and how to describe it without secrets)::

    class LeapRemote(Remote):
        def classify(self, exc, what):
            if not isinstance(exc, SdkError):
                return None                            # not the service's: raised as it is
            return Fault(describe(exc), transient=exc.status in (429, 503))

    remote = LeapRemote("dwave.qpu", deadline, RetryPolicy(retries=3), attempt_timeout=60)
    answer = remote.call("submit the problem", lambda: client.submit(problem))

Every failure is a :class:`~qslm.errors.QslmError` (:class:`ServiceUnavailable`,
:class:`RemoteTimeout`, :class:`Cancelled` or the backend's own), which a solver portfolio
records before it tries its next solver.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from qslm.errors import QslmError, RemoteTimeout, ServiceUnavailable

T = TypeVar("T")


class Cancelled(QslmError):
    """The caller cancelled the remote work (its cancel event was set)."""


class Clock(Protocol):
    def remaining(self) -> float:
        """Seconds left before the deadline (``math.inf`` without one)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``retries`` after the first attempt, waiting ``backoff`` seconds
    doubling up to ``max_backoff``; with ``jitter`` j each wait is drawn from
    ``[(1 - j) * wait, wait]`` (j = 1: AWS's "full jitter"), so that many clients do not
    retry in step."""

    retries: int = 3
    backoff: float = 1.0
    max_backoff: float = 30.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError(f"invalid retry policy {self!r}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter!r}")

    def delay(
        self,
        attempt: int,
        retry_after: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait before retry ``attempt + 1`` (``attempt`` counts from 0): the capped
        exponential backoff (jittered), but never less than the service's ``Retry-After``
        (itself capped at ``max_backoff``)."""
        wait = min(self.max_backoff, self.backoff * 2**attempt)
        if self.jitter:
            wait *= 1.0 - self.jitter * rng()
        return max(wait, min(retry_after or 0.0, self.max_backoff))


@dataclass(frozen=True)
class Fault:
    """What a backend says about one exception of its SDK.

    ``text``: the fault for messages and logs, secrets scrubbed. ``transient``: it may pass,
    so the step is retried. ``retry_after``: the service's ``Retry-After`` in seconds.
    ``error``: for a permanent fault, the error to raise instead of the default
    ``ServiceUnavailable("NAME: could not WHAT: TEXT")``.
    """

    text: str
    transient: bool
    retry_after: float | None = None
    error: Exception | None = None


class Remote:
    """The remote steps of one job under one deadline, counting retries and faults.

    ``deadline``: anything with ``remaining()`` (e.g. :class:`qslm.qubo.solver.Deadline`).
    ``attempt_timeout``: the longest wait for one attempt. ``sleep`` and ``rng`` are injected
    for tests; ``cancel``, once set, stops the work at the next check (before an attempt,
    during a wait for an answer, after a backoff).
    """

    unavailable: ClassVar[type[QslmError]] = ServiceUnavailable
    timed_out: ClassVar[type[QslmError]] = RemoteTimeout
    thread_name: ClassVar[str] = "qslm-remote"

    def __init__(
        self,
        name: str,
        deadline: Clock,
        policy: RetryPolicy,
        *,
        attempt_timeout: float = math.inf,
        log: logging.Logger | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: Callable[[], float] = random.random,
        cancel: threading.Event | None = None,
    ) -> None:
        self.name = name
        self.deadline = deadline
        self.policy = policy
        self.attempt_timeout = attempt_timeout
        self.log = log or logging.getLogger("qslm.remote")
        self.sleep = sleep or time.sleep
        self.rng = rng
        self.cancel = cancel
        self.retries = 0
        self.faults: list[str] = []

    def classify(self, exc: Exception, what: str) -> Fault | None:
        """The fault behind ``exc``, or None when it is not the service's (a bug, or our own
        error): then it is raised as it is. Backends override this."""
        return None

    def call(self, what: str, fn: Callable[[], T], *, timeout: float | None = None) -> T:
        """``fn()`` with retries of transient faults; ``what`` names the step in messages
        ("could not WHAT"). Each attempt may take ``timeout`` seconds (default
        ``attempt_timeout``), never past the deadline."""
        attempt = 0
        budget = self.attempt_timeout if timeout is None else timeout
        while True:
            self._check_cancelled(what)
            limit = min(budget, self.deadline.remaining())
            if limit <= 0:
                raise self.timed_out(f"{self.name}: no time left to {what}")
            try:
                return self.bounded(
                    fn,
                    limit,
                    f"{self.name}: no answer within {limit:.3g} s while trying to {what}",
                )
            except QslmError:
                raise
            except Exception as exc:
                fault = self.classify(exc, what)
                if fault is None:
                    raise
                delay = self._after_fault(what, fault, attempt)
            attempt += 1
            self.retries += 1
            self.log.warning(
                "%s: %s failed (%s); retry %d of %d in %.3g s",
                self.name,
                what,
                self.faults[-1],
                attempt,
                self.policy.retries,
                delay,
            )
            self.sleep(delay)

    def _after_fault(self, what: str, fault: Fault, attempt: int) -> float:
        """The wait before the next attempt, or the error that ends the step."""
        if not fault.transient:
            raise fault.error or self.unavailable(
                f"{self.name}: could not {what}: {fault.text}"
            ) from None
        self.faults.append(fault.text)
        if attempt >= self.policy.retries:
            raise self.unavailable(
                f"{self.name}: could not {what}: still failing after {attempt + 1} "
                f"attempt(s): {fault.text}"
            ) from None
        delay = self.policy.delay(attempt, fault.retry_after, self.rng)
        if delay >= self.deadline.remaining():
            raise self.timed_out(
                f"{self.name}: could not {what} before the time limit: {fault.text}"
            ) from None
        return delay

    def _check_cancelled(self, what: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(f"{self.name}: cancelled before it could {what}")

    def bounded(self, fn: Callable[[], T], timeout: float, message: str) -> T:
        """``fn()`` in a daemon thread, waiting at most ``timeout`` seconds for it (then
        ``timed_out(message)``). A step that overruns is abandoned, not killed (the SDK's own
        timeouts end it); being a daemon thread it never holds up the exit, and Ctrl-C reaches
        the caller while it waits."""
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc

        worker = threading.Thread(target=run, name=self.thread_name, daemon=True)
        worker.start()
        self._join(worker, timeout)
        if worker.is_alive():
            raise self.timed_out(message)
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _join(self, worker: threading.Thread, timeout: float) -> None:
        if self.cancel is None:
            worker.join(None if math.isinf(timeout) else timeout)
            return
        # Wait in slices so that a cancellation is seen while the service is slow.
        end = time.monotonic() + timeout
        while worker.is_alive() and not self.cancel.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            worker.join(min(0.05, left))
        if worker.is_alive():
            raise Cancelled(f"{self.name}: cancelled while waiting for an answer")
