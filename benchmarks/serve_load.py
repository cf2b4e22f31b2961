"""Load test of a running `qslm serve`: N requests at concurrency C, then status counts,
throughput and latency percentiles (client-side, whole HTTP round trip).

    qslm serve builds/quickstart/v1 --max-concurrency 8 &
    python benchmarks/serve_load.py http://127.0.0.1:8000 --requests 200 --concurrency 8

Each request has its own seed, so the cache never answers (pass --same to measure cache hits).
Prints the machine and settings beside the numbers.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

import httpx


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--prompt", default="Simulated annealing")
    parser.add_argument("--same", action="store_true", help="One seed for all: cache hits.")
    parser.add_argument("--api-key", default=os.environ.get("QSLM_API_KEY"))
    args = parser.parse_args()
    headers = {"x-api-key": args.api_key} if args.api_key else {}
    health = httpx.get(f"{args.url}/health", timeout=10).json()

    with httpx.Client(timeout=120, headers=headers) as client:

        def post(i: int) -> tuple[int, float, int]:
            body = {
                "prompt": args.prompt,
                "max_new_tokens": args.max_new_tokens,
                "temperature": 0.8,
                "seed": 0 if args.same else i,
            }
            started = time.perf_counter()
            r = client.post(f"{args.url}/v1/generate", json=body)
            tokens = r.json().get("tokens", 0) if r.status_code == 200 else 0
            return r.status_code, (time.perf_counter() - started) * 1000, tokens

        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(post, range(args.requests)))
        wall = time.perf_counter() - started

    codes = collections.Counter(code for code, _, _ in results)
    ms = [t for code, t, _ in results if code == 200]
    tokens = sum(n for _, _, n in results)
    versions = {}
    for name in ("torch", "transformers", "fastapi", "uvicorn", "qslm-core"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"versions (this machine): {versions}; server: {health}")
    print(
        f"{args.requests} requests at concurrency {args.concurrency}, max_new_tokens "
        f"{args.max_new_tokens}: status {dict(sorted(codes.items()))}, {wall:.1f} s, "
        f"{args.requests / wall:.1f} req/s, {tokens / wall:.0f} tokens/s"
    )
    if ms:
        print(
            f"latency of 200s: p50 {percentile(ms, 50):.0f} ms, p95 {percentile(ms, 95):.0f} ms, "
            f"p99 {percentile(ms, 99):.0f} ms, max {max(ms):.0f} ms"
        )


if __name__ == "__main__":
    main()
