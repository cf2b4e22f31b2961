"""``qslm serve``: real HTTP against servers started here on 127.0.0.1 (uvicorn in a thread, and
once through the CLI in a subprocess) with a tiny local build."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from qslm.inference.generation import GenerationParams, generate  # noqa: E402
from qslm.inference.load import load_build  # noqa: E402
from qslm.inference.server import ServeSettings, create_app  # noqa: E402

KEY = "s3cret-test-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(app):
    """Serve ``app`` with uvicorn on a free port in a thread; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def loaded(tiny_model_build):
    return load_build(tiny_model_build)


@pytest.fixture(scope="module")
def url(loaded):
    with running(create_app(loaded, ServeSettings(max_concurrency=2, max_prompt_chars=500))) as u:
        yield u


def metrics_of(text: str) -> dict[tuple[str, tuple], float]:
    """Parsed Prometheus text: {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_health(url, loaded):
    r = httpx.get(f"{url}/health")
    assert r.status_code == 200
    data = r.json()
    assert {k: data[k] for k in ("status", "build", "kind", "context_length")} == {
        "status": "ok",
        "build": "tiny@v1",
        "kind": "full",
        "context_length": 256,
    }
    assert (data["max_concurrency"], data["batching"], data["max_batch"]) == (2, True, 2)
    (only,) = data["builds"]
    assert only["id"] == "tiny@v1" and only["loaded"] and only["kind"] == "full"
    # Weights of the tiny model, float32: parameters plus buffers (rotary frequencies).
    assert only["weights_bytes"] >= 4 * sum(p.numel() for p in loaded.model.parameters())


def test_generate_returns_the_models_text(url, loaded):
    body = {"prompt": "the cat", "max_new_tokens": 7, "temperature": 0}
    r = httpx.post(f"{url}/v1/generate", json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    expected = generate(loaded.model, loaded.tokenizer, "the cat", GenerationParams(7, 0.0))
    assert (data["text"], data["tokens"]) == (expected.text, 7)
    assert data["latency_ms"] > 0 and data["cached"] in (True, False)


def test_seeded_requests_are_cached_and_reproducible(url):
    body = {"prompt": "a red house", "max_new_tokens": 10, "temperature": 0.9, "seed": 11}
    before = metrics_of(httpx.get(f"{url}/metrics").text)
    first = httpx.post(f"{url}/v1/generate", json=body).json()
    second = httpx.post(f"{url}/v1/generate", json=body).json()
    other = httpx.post(f"{url}/v1/generate", json={**body, "seed": 12}).json()
    unseeded = [
        httpx.post(f"{url}/v1/generate", json={**body, "seed": None}).json() for _ in range(2)
    ]
    assert (first["cached"], second["cached"], other["cached"]) == (False, True, False)
    assert first["text"] == second["text"] != other["text"]
    assert not any(u["cached"] for u in unseeded)
    after = metrics_of(httpx.get(f"{url}/metrics").text)
    assert after[("qslm_cache_hits_total", ())] - before[("qslm_cache_hits_total", ())] == 1
    assert after[("qslm_cache_misses_total", ())] - before[("qslm_cache_misses_total", ())] == 2


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"prompt": ""}, "prompt", "at least 1 character"),
        ({"prompt": "   \n"}, "prompt", "prompt is blank"),
        ({}, "prompt", "Field required"),
        ({"prompt": "x" * 501}, "prompt", "501 characters, over the limit of 500"),
        ({"prompt": "the cat", "max_new_tokens": 0}, "max_new_tokens", "greater than or equal"),
        ({"prompt": "the cat", "max_new_tokens": 5000}, "max_new_tokens", "less than or equal"),
        ({"prompt": "the cat", "max_new_tokens": 255}, "max_new_tokens", "context of 256"),
        ({"prompt": "the cat", "max_new_tokens": True}, "max_new_tokens", "valid integer"),
        ({"prompt": "the cat", "max_new_tokens": "5"}, "max_new_tokens", "valid integer"),
        ({"prompt": "the cat", "temperature": -0.1}, "temperature", "greater than or equal"),
        ({"prompt": "the cat", "temperature": "hot"}, "temperature", "valid number"),
        ({"prompt": "the cat", "top_k": -1}, "top_k", "greater than or equal"),
        ({"prompt": "the cat", "top_p": 0}, "top_p", "greater than 0"),
        ({"prompt": "the cat", "top_p": 1.5}, "top_p", "less than or equal"),
        ({"prompt": "the cat", "seed": -1}, "seed", "greater than or equal"),
        ({"prompt": "the cat", "seed": 2**63}, "seed", "less than"),
        ({"prompt": "the cat", "tempreature": 1}, "tempreature", "unknown field"),
        ({"prompt": 5}, "prompt", "valid string"),
        (["the cat"], "body", "valid dictionary"),
    ],
)
def test_invalid_requests_get_422_naming_the_field(url, body, field, words):
    r = httpx.post(f"{url}/v1/generate", json=body)
    assert r.status_code == 422, r.text
    data = r.json()
    assert data["error"].startswith("invalid request: ") and words in data["error"]
    assert field in [e["field"] for e in data["errors"]]


@pytest.mark.parametrize("raw", [b"{not json", b'{"prompt": "a",}', b"\xff\xfe"])
def test_malformed_json_is_400(url, raw):
    headers = {"content-type": "application/json"}
    r = httpx.post(f"{url}/v1/generate", content=raw, headers=headers)
    assert r.status_code == 400 and r.json()["error"] == "the body is not valid JSON"


def test_a_missing_body_is_422(url):
    r = httpx.post(f"{url}/v1/generate")
    assert r.status_code == 422 and r.json()["error"] == "invalid request: body: Field required"


def test_oversized_body_and_wrong_routes_are_4xx(url):
    r = httpx.post(f"{url}/v1/generate", json={"prompt": "x" * 10_000})
    assert r.status_code == 413 and "request body over" in r.json()["error"]
    assert httpx.get(f"{url}/v1/generate").status_code == 405
    assert httpx.get(f"{url}/nope").json() == {"error": "Not Found"}


def test_api_key_is_required_when_set(loaded, monkeypatch):
    app = create_app(loaded, ServeSettings(api_key=KEY))
    body = {"prompt": "the cat", "max_new_tokens": 2}
    with running(app) as u:
        answers = {
            "none": httpx.post(f"{u}/v1/generate", json=body),
            "wrong": httpx.post(f"{u}/v1/generate", json=body, headers={"x-api-key": "nope"}),
            "basic": httpx.post(
                f"{u}/v1/generate", json=body, headers={"authorization": f"Basic {KEY}"}
            ),
            "bearer": httpx.post(
                f"{u}/v1/generate", json=body, headers={"authorization": f"Bearer {KEY}"}
            ),
            "x-api-key": httpx.post(f"{u}/v1/generate", json=body, headers={"x-api-key": KEY}),
            "bad json, no key": httpx.post(f"{u}/v1/generate", content=b"{"),
            "metrics, no key": httpx.get(f"{u}/metrics"),
            "health, no key": httpx.get(f"{u}/health"),
        }
        status = {k: r.status_code for k, r in answers.items()}
        assert status == {
            "none": 401,
            "wrong": 401,
            "basic": 401,
            "bearer": 200,
            "x-api-key": 200,
            "bad json, no key": 401,
            "metrics, no key": 401,
            "health, no key": 200,
        }
        assert answers["none"].headers["www-authenticate"] == "Bearer"
        metrics = httpx.get(f"{u}/metrics", headers={"x-api-key": KEY}).text
    assert all(KEY not in r.text for r in answers.values()) and KEY not in metrics
    assert 'qslm_requests_total{path="/v1/generate",status="401"} 4.0' in metrics


def test_a_burst_beyond_the_bound_gets_429_at_once(loaded):
    app = create_app(loaded, ServeSettings(max_concurrency=1, cache_size=0))
    body = {"prompt": "the cat", "max_new_tokens": 250, "temperature": 0}
    with running(app) as u, httpx.Client(timeout=60) as client:

        def post(_):
            started = time.perf_counter()
            r = client.post(f"{u}/v1/generate", json=body)
            return r.status_code, time.perf_counter() - started, r.json()

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(post, range(6)))
        metrics = metrics_of(client.get(f"{u}/metrics").text)
    codes = sorted(code for code, _, _ in results)
    assert codes.count(200) >= 1 and codes.count(429) >= 1 and set(codes) <= {200, 429}, codes
    slowest_ok = max(t for code, t, _ in results if code == 200)
    assert all(t < slowest_ok for code, t, _ in results if code == 429)  # refused, not queued
    assert all(d["tokens"] == 250 for c, _, d in results if c == 200)
    assert all("busy: 1 of 1 generations running" in d["error"] for c, _, d in results if c == 429)
    assert metrics[("qslm_rejected_busy_total", ())] == codes.count(429)
    assert metrics[("qslm_requests_total", (("path", "/v1/generate"), ("status", "429")))] == (
        codes.count(429)
    )


def test_health_answers_at_once_while_a_generation_runs(loaded):
    app = create_app(loaded, ServeSettings(max_concurrency=1, cache_size=0))
    body = {"prompt": "the cat", "max_new_tokens": 250, "temperature": 0}
    with running(app) as u, httpx.Client(timeout=60) as client, ThreadPoolExecutor(1) as pool:
        started = time.perf_counter()
        long = pool.submit(client.post, f"{u}/v1/generate", json=body)
        seen = []
        while not long.done() and len(seen) < 20:
            t = time.perf_counter()
            health = client.get(f"{u}/health").json()
            seen.append((health["in_progress"], time.perf_counter() - t))
        generation_s = time.perf_counter() - started
        assert long.result().status_code == 200
    during = [dt for busy, dt in seen if busy == 1]
    assert during, "never saw the generation running"
    # Generation runs in a worker thread: the event loop answers meanwhile.
    assert max(during) < generation_s / 2, (during, generation_s)


def test_metrics_count_requests_latency_and_tokens(loaded):
    app = create_app(loaded, ServeSettings())
    with running(app) as u:
        tokens = 0
        for n in (3, 5, 8):
            r = httpx.post(f"{u}/v1/generate", json={"prompt": "a dog", "max_new_tokens": n})
            tokens += r.json()["tokens"]
        httpx.post(f"{u}/v1/generate", json={"prompt": ""})
        httpx.get(f"{u}/health")
        r = httpx.get(f"{u}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = metrics_of(r.text)
    assert m[("qslm_requests_total", (("path", "/v1/generate"), ("status", "200")))] == 3
    assert m[("qslm_requests_total", (("path", "/v1/generate"), ("status", "422")))] == 1
    assert m[("qslm_requests_total", (("path", "/health"), ("status", "200")))] == 1
    assert m[("qslm_generated_tokens_total", ())] == tokens
    assert m[("qslm_generate_latency_seconds_count", ())] == 3
    assert m[("qslm_generate_latency_seconds_bucket", (("le", "+Inf"),))] == 3
    assert m[("qslm_generations_in_progress", ())] == 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def test_load_run_200_requests_at_concurrency_8_has_no_5xx(loaded):
    import torch

    from qslm.inference.server import torch_threads_for

    threads = torch.get_num_threads()
    torch.set_num_threads(torch_threads_for(8, os.cpu_count() or 1))  # as `qslm serve` does
    app = create_app(loaded, ServeSettings(max_concurrency=8))
    try:
        with running(app) as u, httpx.Client(timeout=60) as client:

            def post(i):
                body = {"prompt": f"the bird {i}", "max_new_tokens": 8, "seed": i}
                started = time.perf_counter()
                r = client.post(f"{u}/v1/generate", json=body)
                return r.status_code, time.perf_counter() - started, r.json().get("text")

            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(post, range(200)))
            wall = time.perf_counter() - started
            m = metrics_of(client.get(f"{u}/metrics").text)
    finally:
        torch.set_num_threads(threads)
    codes = [c for c, _, _ in results]
    assert not [c for c in codes if c >= 500]
    assert codes.count(200) == 200  # the bound equals the client's concurrency: nothing refused
    # Eight sampled generations at a time did not disturb each other's seeded draws:
    for i in range(0, 200, 40):
        alone = generate(
            loaded.model, loaded.tokenizer, f"the bird {i}", GenerationParams(8, seed=i)
        )
        assert results[i][2] == alone.text, i
    ms = [t * 1000 for _, t, _ in results]
    print(
        f"\nload: 200 requests, concurrency 8, max_new_tokens 8: {200 / wall:.1f} req/s, "
        f"p50 {percentile(ms, 50):.0f} ms, p95 {percentile(ms, 95):.0f} ms, "
        f"p99 {percentile(ms, 99):.0f} ms"
    )
    assert m[("qslm_requests_total", (("path", "/v1/generate"), ("status", "200")))] == 200


def test_qslm_serve_cli_with_api_key_and_two_builds(tiny_model_build, tmp_path):
    """`qslm serve FOLDER builds/NAME@current` as a user runs it: both builds are served."""
    from conftest import save_tiny_build

    save_tiny_build(tmp_path / "builds", "second")
    port = free_port()
    env = {**os.environ, "QSLM_API_KEY": KEY}
    args = ["serve", str(tiny_model_build), "builds/second@current", "--port", str(port)]
    code = "from qslm.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        # generous: two builds load while the other test worker trains (a deadline, not a timing)
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "qslm serve did not come up"
            time.sleep(0.2)
        body = {"prompt": "the cat", "max_new_tokens": 3}
        assert httpx.post(f"{url}/v1/generate", json=body).status_code == 401
        ok = httpx.post(f"{url}/v1/generate", json=body, headers={"x-api-key": KEY})
        assert ok.status_code == 200 and ok.json()["tokens"] == 3
        auth = {"authorization": f"Bearer {KEY}"}
        models = httpx.get(f"{url}/v1/models", headers=auth).json()["data"]
        assert {"tiny@v1", "second@v1", "second@current"} <= {m["id"] for m in models}
        for model in ("tiny@v1", "second@current"):
            body = {"model": model, "prompt": "the cat", "max_tokens": 2}
            r = httpx.post(f"{url}/v1/completions", json=body, headers=auth)
            assert r.status_code == 200 and r.json()["model"] == model, r.text
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert "API key required" in out and "POST /v1/generate" in out  # uvicorn's access log
    assert KEY not in out


def test_serve_without_the_extra_says_how_to_install(tiny_model_build):
    code = (
        "import sys\n"
        "sys.modules['fastapi'] = None\n"  # as if qslm-core[serve] were not installed
        "from click.testing import CliRunner\n"
        "from qslm.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['serve', {str(tiny_model_build)!r}])\n"
        "print(r.exit_code, r.output)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("1 ") and "pip install 'qslm-core[serve]'" in out.stdout
    assert "Traceback" not in out.stdout, json.dumps(out.stdout)


def test_help_imports_no_server_or_plotting_library():
    from qslm.testing import check_listing_is_light

    heavy = ("torch", "transformers", "fastapi", "uvicorn", "prometheus_client", "matplotlib")
    check_listing_is_light(("--help",), heavy=heavy)
    check_listing_is_light(("serve", "--help"), heavy=heavy)
