"""qslm.remote: the retry/deadline helper the remote backends share, on a fake clock with the
sleep and the random source injected (the backends' own fault tests use real SDK errors)."""

from __future__ import annotations

import logging
import math
import threading
import time

import pytest

from qslm.errors import ConfigError, QslmError, RemoteTimeout, ServiceUnavailable
from qslm.remote import Cancelled, Fault, Remote, RetryPolicy


class Flaky(Exception):
    """The fake SDK's error: transient unless ``permanent``; may carry a Retry-After."""

    def __init__(self, text="busy", *, permanent=False, retry_after=None):
        super().__init__(text)
        self.permanent, self.retry_after = permanent, retry_after


class Clock:
    """A deadline on fake time; its ``sleep`` advances the time and records each wait."""

    def __init__(self, limit: float = math.inf) -> None:
        self.now, self.limit, self.slept = 0.0, limit, []

    def remaining(self) -> float:
        return self.limit - self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class FakeService(Remote):
    def classify(self, exc, what):
        if not isinstance(exc, Flaky):
            return None
        if exc.permanent and str(exc) == "rejected":
            return Fault(str(exc), transient=False, error=ConfigError(f"rejected: {what}"))
        return Fault(f"Flaky: {exc}", transient=not exc.permanent, retry_after=exc.retry_after)


def remote(clock: Clock, **policy) -> FakeService:
    kw = {k: policy.pop(k) for k in ("rng", "cancel", "attempt_timeout") if k in policy}
    return FakeService("fake.solver", clock, RetryPolicy(**policy), sleep=clock.sleep, **kw)


def failing(*errors: Exception, answer="ok"):
    """A step that raises ``errors`` in turn, then answers; counts its calls."""
    pending = list(errors)
    calls = []

    def step():
        calls.append(1)
        if pending:
            raise pending.pop(0)
        return answer

    step.calls = calls
    return step


def test_transient_faults_are_retried_with_doubling_backoff(caplog):
    clock = Clock()
    r = remote(clock, retries=3, backoff=1.0, max_backoff=30.0)
    step = failing(Flaky("one"), Flaky("two"))
    with caplog.at_level(logging.WARNING, logger="qslm.remote"):
        assert r.call("submit", step) == "ok"
    assert clock.slept == [1.0, 2.0] and len(step.calls) == 3
    assert r.retries == 2 and r.faults == ["Flaky: one", "Flaky: two"]
    assert "fake.solver: submit failed (Flaky: two); retry 2 of 3 in 2 s" in caplog.text


def test_the_backoff_is_capped_then_the_service_is_unavailable():
    clock = Clock()
    r = remote(clock, retries=4, backoff=1.0, max_backoff=3.0)
    step = failing(*[Flaky("down")] * 10)
    with pytest.raises(ServiceUnavailable, match=r"could not poll: still failing after 5 attempt"):
        r.call("poll", step)
    assert clock.slept == [1.0, 2.0, 3.0, 3.0] and len(step.calls) == 5


def test_jitter_draws_each_wait_below_the_backoff():
    clock = Clock()
    draws = iter([0.5, 0.0, 1.0])
    r = remote(clock, retries=3, backoff=2.0, max_backoff=30.0, jitter=0.5, rng=lambda: next(draws))
    assert r.call("submit", failing(Flaky(), Flaky(), Flaky())) == "ok"
    assert clock.slept == [1.5, 4.0, 4.0]  # 2 * (1 - 0.25), 4 * 1, 8 * (1 - 0.5)


def test_retry_after_is_a_floor_capped_by_the_largest_backoff():
    clock = Clock()
    r = remote(clock, retries=3, backoff=0.5, max_backoff=10.0)
    assert r.call("submit", failing(Flaky(retry_after=4.0), Flaky(retry_after=60.0))) == "ok"
    assert clock.slept == [4.0, 10.0]
    assert RetryPolicy(backoff=8.0, max_backoff=8.0).delay(0, retry_after=2.0) == 8.0


def test_a_permanent_fault_is_raised_at_once():
    clock = Clock()
    step = failing(Flaky("bad request", permanent=True))
    with pytest.raises(ServiceUnavailable, match=r"^fake.solver: could not submit: Flaky: bad"):
        remote(clock).call("submit", step)
    assert clock.slept == [] and len(step.calls) == 1
    with pytest.raises(ConfigError, match="rejected: log in"):  # the backend's own error
        remote(clock).call("log in", failing(Flaky("rejected", permanent=True)))


def test_errors_that_are_not_the_services_go_up_as_they_are():
    clock = Clock()
    bug = failing(KeyError("a bug"))
    with pytest.raises(KeyError):
        remote(clock).call("submit", bug)
    ours = failing(QslmError("our own"))
    with pytest.raises(QslmError, match="our own"):
        remote(clock).call("submit", ours)
    assert clock.slept == [] and len(bug.calls) == len(ours.calls) == 1


def test_a_backoff_past_the_deadline_is_a_timeout_without_waiting():
    clock = Clock(limit=5.0)
    r = remote(clock, retries=5, backoff=2.0, max_backoff=30.0)
    with pytest.raises(RemoteTimeout, match="could not submit before the time limit: Flaky"):
        r.call("submit", failing(*[Flaky()] * 10))
    assert clock.slept == [2.0]  # the next wait (4 s) would end past the deadline (3 s left)


def test_no_time_left_means_no_attempt():
    step = failing()
    with pytest.raises(RemoteTimeout, match="no time left to submit"):
        remote(Clock(limit=0.0)).call("submit", step)
    assert step.calls == []


def test_an_attempt_that_overruns_is_abandoned():
    release = threading.Event()
    r = remote(Clock(), attempt_timeout=0.05)
    try:
        with pytest.raises(RemoteTimeout, match=r"no answer within 0\.05 s while trying to wait"):
            r.call("wait", lambda: release.wait(10))
    finally:
        release.set()


def test_cancellation_stops_before_an_attempt_after_a_backoff_and_while_waiting():
    cancel = threading.Event()
    cancel.set()
    step = failing()
    with pytest.raises(Cancelled, match="cancelled before it could submit"):
        remote(Clock(), cancel=cancel).call("submit", step)
    assert step.calls == []

    cancel = threading.Event()
    clock = Clock()
    clock.sleep = lambda seconds: cancel.set()  # cancelled during the backoff
    step = failing(Flaky(), Flaky())
    with pytest.raises(Cancelled):
        FakeService("fake.solver", clock, RetryPolicy(), sleep=clock.sleep, cancel=cancel).call(
            "submit", step
        )
    assert len(step.calls) == 1

    cancel, release = threading.Event(), threading.Event()
    timer = threading.Timer(0.05, cancel.set)
    timer.start()
    started = time.perf_counter()
    try:
        with pytest.raises(Cancelled, match="while waiting for an answer"):
            remote(Clock(), cancel=cancel).call("wait", lambda: release.wait(10))
    finally:
        release.set()
        timer.cancel()
    assert time.perf_counter() - started < 5.0


def test_a_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=1.5)
