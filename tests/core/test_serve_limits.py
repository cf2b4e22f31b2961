"""``qslm serve``'s limits below the routes (issue 15): the body limit on the bytes read
(chunked bodies too), body and header read timeouts (slowloris), the connection cap; and a
Schemathesis run against the OpenAPI schema the app publishes (no 5xx, responses match it)."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from test_serve import free_port  # noqa: E402

from qslm.inference.serve_run import uvicorn_config  # noqa: E402
from qslm.inference.served import ServedBuilds  # noqa: E402
from qslm.inference.server import ServeSettings, create_app  # noqa: E402


@pytest.fixture(scope="module")
def served(tiny_model_build):
    return ServedBuilds([tiny_model_build], max_batch=4)


@contextmanager
def serving(app, **limits):
    """``app`` behind the uvicorn configuration ``qslm serve`` uses; yields (host, port)."""
    port = free_port()
    config = uvicorn_config(app, "127.0.0.1", port, log_level="error", **limits)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(10)


LIMITS = dict(max_connections=8, timeouts=(0.5, 0.5, 1.0))


@pytest.fixture(scope="module")
def server(served):
    settings = ServeSettings(max_prompt_chars=200, body_timeout_s=0.5)
    with serving(create_app(served, settings), **LIMITS) as addr:
        yield addr


def test_a_chunked_body_over_the_limit_gets_413_before_it_is_sent_whole(server):
    """No Content-Length, 8 KB chunks: the 413 must come back while we are still sending."""
    import select

    with socket.create_connection(server) as sock:
        sock.sendall(
            b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        sent, answer = 0, b""
        chunk = b"2000\r\n" + b"x" * 0x2000 + b"\r\n"
        while sent < 200 * 2**20 and not answer:
            sock.sendall(chunk)
            sent += 0x2000
            if select.select([sock], [], [], 0.01)[0]:
                answer = sock.recv(4096)
        sock.settimeout(5)
        while answer and b"}}" not in answer:  # the body may come in a later packet
            more = sock.recv(4096)
            if not more:
                break
            answer += more
    assert answer.startswith(b"HTTP/1.1 413") and b"request_too_large" in answer, answer[:200]
    assert sent < 2**20  # refused at the limit (4.9 KB here), not after 200 MB
    host, port = server
    legacy = httpx.post(f"http://{host}:{port}/v1/generate", content=b"x" * 10_000)
    assert legacy.status_code == 413 and "request body over" in legacy.json()["error"]


def test_a_body_that_never_arrives_gets_408(server):
    with socket.create_connection(server) as sock:
        sock.sendall(
            b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b'content-length: 100\r\n\r\n{"model"'
        )
        sock.settimeout(5)
        answer = b""
        while b"request_timeout" not in answer:  # head and body may come in separate reads
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer


def test_slowloris_headers_are_cut_off(server):
    socks = [socket.create_connection(server) for _ in range(5)]
    try:
        for sock in socks:
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nhost: x\r\n")  # and never more
            sock.settimeout(5)
        started = time.monotonic()
        assert all(sock.recv(1024) == b"" for sock in socks)  # closed by the server
        assert time.monotonic() - started < 3
    finally:
        for sock in socks:
            sock.close()
    assert httpx.get(f"http://{server[0]}:{server[1]}/health").status_code == 200


def test_connections_beyond_the_cap_get_503_and_idle_ones_close(served):
    with serving(create_app(served, ServeSettings()), max_connections=3, timeouts=(30, 30, 1)) as s:
        idle = [socket.create_connection(s) for _ in range(3)]
        try:
            time.sleep(1.0)  # let the server accept all three
            assert httpx.get(f"http://{s[0]}:{s[1]}/health").status_code == 503
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.5)
        with httpx.Client() as client:
            assert client.get(f"http://{s[0]}:{s[1]}/health").status_code == 200
            time.sleep(1.5)  # past the keep-alive timeout: the server closed the connection
            assert client.get(f"http://{s[0]}:{s[1]}/health").status_code == 200  # reconnects


def test_schemathesis_finds_no_5xx_and_no_schema_violation(tmp_path):
    """Every operation of the published schema, 8 generated requests each, against a build
    with a 32-token context (so that no generated request decodes for long)."""
    schemathesis = pytest.importorskip("schemathesis")
    from conftest import save_tiny_build
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    served = ServedBuilds([save_tiny_build(tmp_path, "fuzz", context_length=32)], max_batch=4)
    app = create_app(served, ServeSettings(max_prompt_chars=200))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [not_a_server_error, response_schema_conformance]

    def served_model(case):
        # A random `model` is never served (404 every time): name the served build in most
        # generated bodies so that the answering paths are fuzzed too.
        if isinstance(case.body, dict) and "model" in case.body and len(str(case.body)) % 4:
            case.body["model"] = "fuzz@v1"
        return case

    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=8,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # report a failure as found, no shrinking
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy().map(served_model))
        def fuzz(case):
            case.call_and_validate(checks=checks, timeout=60)

        try:
            fuzz()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
