"""The serving side of ``benchmarks/gpu.py``: start ``qslm serve`` on a build, then generated
tokens per second at concurrency 1 and 32 (client side, whole HTTP round trips).

The server's API is behind :class:`Api`, so this part does not care which one ``qslm serve``
speaks: today's ``POST /v1/generate`` (``{"prompt", "max_new_tokens"}`` -> ``{"tokens"}``), or
an OpenAI-compatible ``POST /v1/completions`` (``usage.completion_tokens``), found by asking
``GET /v1/models`` first. Nothing here knows about training.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PROMPT = "the model learns a small language from these words"


class Api:
    """One request shape of a running server: ``generate(client, i)`` -> tokens generated."""

    def __init__(self, url: str, client: Any) -> None:
        self.url = url
        models = client.get(f"{url}/v1/models")
        self.kind = "openai" if models.status_code == 200 else "qslm-generate"
        self.model = models.json()["data"][0]["id"] if self.kind == "openai" else None

    def generate(self, client: Any, i: int, max_new_tokens: int) -> int:
        if self.kind == "openai":
            body = {
                "model": self.model,
                "prompt": PROMPT,
                "max_tokens": max_new_tokens,
                "temperature": 0.8,
                "seed": i,
            }
            r = client.post(f"{self.url}/v1/completions", json=body)
            r.raise_for_status()
            return int(r.json()["usage"]["completion_tokens"])
        body = {"prompt": PROMPT, "max_new_tokens": max_new_tokens, "temperature": 0.8, "seed": i}
        r = client.post(f"{self.url}/v1/generate", json=body)
        r.raise_for_status()
        return int(r.json()["tokens"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(build: Path, concurrency: int, log: Path) -> tuple[subprocess.Popen, str]:
    """``qslm serve BUILD`` on a free port of 127.0.0.1 with room for ``concurrency``
    generations at once and no response cache; waits until ``/health`` answers."""
    import httpx

    port = free_port()
    cmd = [
        sys.executable,
        "-c",
        "from qslm.cli import main; main()",
        "serve",
        str(build),
        "--port",
        str(port),
        "--max-concurrency",
        str(concurrency),
        "--cache-size",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=os.environ)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"qslm serve exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"qslm serve did not answer /health within 180 s: {log.read_text()[-2000:]}")


def measure(url: str, concurrency: int, requests: int, max_new_tokens: int) -> dict[str, Any]:
    """``requests`` generations, ``concurrency`` at a time: tokens/s and latency."""
    import httpx

    with httpx.Client(timeout=600) as client:
        api = Api(url, client)
        api.generate(client, 10_000, 4)  # warm-up: first CUDA kernels, first allocation

        def one(i: int) -> tuple[int, float]:
            t = time.perf_counter()
            return api.generate(client, i, max_new_tokens), time.perf_counter() - t

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, range(requests)))
        wall = time.perf_counter() - started
    latencies = sorted(t for _, t in results)
    tokens = sum(n for n, _ in results)
    return {
        "api": api.kind,
        "concurrency": concurrency,
        "requests": requests,
        "max_new_tokens": max_new_tokens,
        "tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": tokens / wall if wall > 0 else 0.0,
        "p50_latency_s": latencies[len(latencies) // 2],
    }


def merged_build(build: Path, work: Path) -> Path:
    """A build folder whose model is ``build``'s merged/ (base + adapter as one full model):
    ``qslm serve`` on an adapter build would load the base and apply the adapter instead."""
    import json

    merged = build / "merged"
    if not (merged / "config.json").is_file():
        raise FileNotFoundError(f"{build} has no merged/ model (train with merge = true)")
    folder = work / "serve" / "merged" / "v1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model").symlink_to(merged.resolve(), target_is_directory=True)
    manifest = {
        "name": "merged",
        "version": "v1",
        "artifact": {"model_dir": "model", "tokenizer_dir": "model", "kind": "full"},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def serve_benchmark(build: Path, work: Path, s: dict[str, Any]) -> dict[str, Any]:
    """Serve the merged model of ``build`` and measure concurrency 1 and 32 (or what ``s``
    says); a failure is reported, not raised, so the training numbers are kept."""
    result: dict[str, Any] = {"build": str(build), "model": "merged"}
    proc = None
    try:
        served = merged_build(build, work)
        proc, url = start_server(served, max(s["serve_concurrency"]), work / "serve.log")
        result["runs"] = [
            measure(url, c, max(c * s["serve_requests_per_slot"], 4), s["serve_new_tokens"])
            for c in s["serve_concurrency"]
        ]
    except Exception as exc:  # the benchmark's report says what failed
        result["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return result
