"""Credentials, secrecy and remote faults of the Leap solvers, all offline: no credentials fails
at once without touching the network; a token never shows in messages, logs or results;
transient faults are retried with capped exponential backoff; a dead or slow service raises
the errors a solver portfolio falls back on."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dwave.cloud.api import exceptions as api

from qslm.errors import QslmError
from qslm.testing import random_qubo
from qslm_dwave import remote
from qslm_dwave.errors import (
    CredentialsRejected,
    MissingCredentials,
    RemoteTimeout,
    ServiceUnavailable,
)
from qslm_dwave.hybrid import HybridSolver
from qslm_dwave.qpu import QpuSolver


def qpu(**options):
    return QpuSolver(QpuSolver.Options(**options))


@pytest.mark.parametrize("solver", [QpuSolver, HybridSolver])
def test_no_credentials_fails_at_once_without_network(solver, no_network, qpu_factory):
    asked = qpu_factory(lambda: pytest.fail("the sampler must not be built without a token"))
    started = time.perf_counter()
    with pytest.raises(MissingCredentials) as err:
        solver().solve(random_qubo(5), seed=0)
    assert time.perf_counter() - started < 1.0
    message = str(err.value)
    assert "DWAVE_API_TOKEN" in message and "dwave config create" in message
    assert "Nothing was sent" in message
    assert no_network == [] and asked == []


def test_a_token_in_dwaves_config_file_is_found(isolated_dwave_config, qpu_factory, mock_qpu):
    conf = isolated_dwave_config / ".config" / "dwave" / "dwave.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[defaults]\ntoken = FIL-00112233445566778899aabbccddeeff00112233\n")
    qpu_factory(mock_qpu())
    result = qpu(num_reads=5).solve(random_qubo(5), seed=0)
    assert str(conf) in result.info["credentials"]
    assert "00112233445566778899" not in json.dumps(result.to_dict())
    assert str(conf) in "\n".join(QpuSolver().plan())


def test_an_unknown_profile_is_a_config_error(fake_token):
    with pytest.raises(QslmError, match="D-Wave configuration could not be read"):
        qpu(profile="nope").solve(random_qubo(3))


class FakeSapi:
    """A local HTTP server answering every request with one status, counting requests."""

    def __init__(self, status: int) -> None:
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                body = json.dumps({"error_code": status, "error_msg": "fake SAPI"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/sapi/v2/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_sapi(monkeypatch):
    servers = []

    def start(status: int) -> FakeSapi:
        server = FakeSapi(status)
        servers.append(server)
        monkeypatch.setenv("DWAVE_API_ENDPOINT", server.endpoint)
        return server

    yield start
    for server in servers:
        server.close()


def test_a_dead_service_is_retried_then_reported_and_the_token_never_shows(
    fake_token, fake_sapi, caplog, capsys
):
    """The real DWaveSampler and cloud client against a local server answering 503."""
    sapi = fake_sapi(503)
    caplog.set_level(1)  # every record of every library, the SDK's DEBUG and TRACE included
    started = time.perf_counter()
    with pytest.raises(ServiceUnavailable) as err:
        qpu(retries=2, retry_backoff=0.05).solve(random_qubo(5), seed=0)
    assert time.perf_counter() - started < 30
    assert "still failing after 3 attempt(s)" in str(err.value)
    assert sapi.requests >= 3
    assert "retry 2 of 2" in caplog.text
    # The SDK logs its configuration, token included, at DEBUG: it must arrive scrubbed.
    assert "Config loaded" in caplog.text
    out = capsys.readouterr()
    for text in (str(err.value), caplog.text, out.out, out.err, "\n".join(QpuSolver().plan())):
        assert fake_token not in text
        assert fake_token[4:] not in text


def test_a_rejected_token_is_not_retried(fake_token, fake_sapi, caplog):
    sapi = fake_sapi(401)
    with pytest.raises(CredentialsRejected, match="rejected the API token") as err:
        qpu(retries=3, retry_backoff=0.05).solve(random_qubo(5), seed=0)
    assert sapi.requests == 1
    assert "retry" not in caplog.text
    assert fake_token not in str(err.value)


def test_a_transient_fault_then_success(fake_token, qpu_factory, mock_qpu, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(remote, "_sleep", slept.append)
    mock = mock_qpu()
    original = mock.sample
    faults = [api.InternalServerError(error_msg="try again", error_code=502)]

    def flaky_sample(bqm, **kwargs):
        if faults:
            raise faults.pop()
        return original(bqm, **kwargs)

    mock.sample = flaky_sample
    connects = []

    def flaky_connect():
        connects.append(1)
        if len(connects) == 1:
            raise api.RequestTimeout("API request timed out")
        return mock

    qpu_factory(flaky_connect)
    result = qpu(num_reads=5, retry_backoff=0.5).solve(random_qubo(8), seed=0)
    assert result.num_samples >= 1
    assert result.info["retries"] == 2  # one to connect, one to sample
    assert slept == [0.5, 0.5]  # each step's backoff starts afresh


def test_backoff_doubles_up_to_its_cap_then_the_service_is_unavailable(
    fake_token, qpu_factory, monkeypatch
):
    slept: list[float] = []
    monkeypatch.setattr(remote, "_sleep", slept.append)

    def down():
        raise api.ResourceLimitsExceededError(error_msg="too many requests", error_code=429)

    qpu_factory(down)
    with pytest.raises(ServiceUnavailable, match=r"after 5 attempt\(s\).*429"):
        qpu(retries=4, retry_backoff=1.0, retry_max_backoff=3.0).solve(random_qubo(5))
    assert slept == [1.0, 2.0, 3.0, 3.0]


def test_a_backoff_past_the_time_limit_raises_a_timeout_at_once(fake_token, qpu_factory):
    def down():
        raise api.InternalServerError(error_msg="down", error_code=503)

    qpu_factory(down)
    started = time.perf_counter()
    with pytest.raises(RemoteTimeout, match="before the time limit"):
        qpu(retry_backoff=30.0).solve(random_qubo(5), time_limit=2.0)
    assert time.perf_counter() - started < 1.0


def test_a_slow_answer_is_abandoned_at_the_time_limit(fake_token, qpu_factory, mock_qpu):
    mock = mock_qpu()
    original = mock.sample

    def slow_sample(bqm, **kwargs):
        time.sleep(5)
        return original(bqm, **kwargs)

    mock.sample = slow_sample
    qpu_factory(mock)
    started = time.perf_counter()
    with pytest.raises(RemoteTimeout, match="no answer within"):
        qpu(num_reads=5).solve(random_qubo(5), seed=0, time_limit=1.0)
    assert time.perf_counter() - started < 2.0


def test_the_timeout_option_bounds_each_wait(fake_token, qpu_factory, mock_qpu):
    def hang():
        time.sleep(5)
        return mock_qpu()

    qpu_factory(hang)
    started = time.perf_counter()
    with pytest.raises(RemoteTimeout, match="connect to the QPU solver"):
        qpu(timeout=0.5).solve(random_qubo(5), seed=0)
    assert time.perf_counter() - started < 1.5


def test_sdk_records_are_scrubbed_for_any_handler(fake_token):
    from qslm_dwave.credentials import redact_sdk_logs

    redact_sdk_logs()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("dwave.cloud.some.module.loaded.later")
    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("config: %r", {"token": fake_token, "region": "na-west-1"})
    finally:
        logger.removeHandler(handler)
    [record] = records
    assert fake_token not in record.getMessage() and "na-west-1" in record.getMessage()
