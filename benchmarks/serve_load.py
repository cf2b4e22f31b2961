"""Load test of `qslm serve`'s OpenAI API: requests/s, tokens/s and p50/p95/p99 latency at several
client concurrencies, batching on against batching off, on a given build and on a larger
from-scratch model (6 layers x 384 hidden, random weights: decoding cost does not depend on
training), all in one run. Each configuration is a fresh `qslm serve` subprocess.

    python benchmarks/serve_load.py builds/quickstart@current
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --model quickstart  # running

Every request is a seeded sample (temperature 0.8) of --max-tokens tokens from
POST /v1/completions. Prints the machine, versions and settings beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import httpx

PROMPTS = ["Simulated annealing", "A QUBO is", "Quantum computers", "The transformer", "Tabu"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def load(url: str, model: str, requests: int, concurrency: int, max_tokens: int) -> dict:
    """``requests`` completions at ``concurrency``: status counts, rates and latencies."""
    key = os.environ.get("QSLM_API_KEY")
    with httpx.Client(timeout=600, headers={"x-api-key": key} if key else {}) as client:

        def post(i: int) -> tuple[int, float, int]:
            body = {
                "model": model,
                "prompt": PROMPTS[i % len(PROMPTS)],
                "max_tokens": max_tokens,
                "temperature": 0.8,
                "seed": i,
            }
            started = time.perf_counter()
            r = client.post(f"{url}/v1/completions", json=body)
            tokens = r.json()["usage"]["completion_tokens"] if r.status_code == 200 else 0
            return r.status_code, (time.perf_counter() - started) * 1000, tokens

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(post, range(requests)))
        wall = time.perf_counter() - started
    ms = [t for code, t, _ in results if code == 200]
    codes: dict[int, int] = {}
    for code, _, _ in results:
        codes[code] = codes.get(code, 0) + 1
    return {
        "codes": codes,
        "req_s": requests / wall,
        "tok_s": sum(n for _, _, n in results) / wall,
        **{f"p{q}": percentile(ms, q) if ms else float("nan") for q in (50, 95, 99)},
    }


def big_model(tokenizer_from: Path, root: Path) -> Path:
    """A build folder with a random 6x384 Llama using the tokenizer of ``tokenizer_from``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    manifest = json.loads((tokenizer_from / "manifest.json").read_text())
    tok = AutoTokenizer.from_pretrained(tokenizer_from / manifest["artifact"]["tokenizer_dir"])
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=384,
        intermediate_size=1024,
        num_hidden_layers=6,
        num_attention_heads=6,
        num_key_value_heads=6,
        max_position_embeddings=256,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
    )
    build = root / "scratch-6x384" / "v1"
    AutoModelForCausalLM.from_config(config).save_pretrained(build / "model")
    tok.save_pretrained(build / "model")
    artifact = {"model_dir": "model", "tokenizer_dir": "model", "kind": "full"}
    (build / "manifest.json").write_text(
        json.dumps({"name": "scratch-6x384", "version": "v1", "artifact": artifact})
    )
    return build


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(
    build: Path, batching: bool, max_concurrency: int, threads: int | None
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    qslm = shutil.which("qslm") or sys.exit("qslm is not on PATH")
    cmd = [qslm, "serve", str(build), "--port", str(port)]
    cmd += ["--max-concurrency", str(max_concurrency)]
    cmd += [] if batching else ["--no-batching"]
    cmd += ["--torch-threads", str(threads)] if threads else []
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            sys.exit(f"qslm serve failed: {proc.stderr.read()}")
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            sys.exit("qslm serve did not come up")
        time.sleep(0.3)


def header(args: argparse.Namespace) -> None:
    versions = {}
    for name in ("torch", "transformers", "fastapi", "uvicorn", "qslm-core"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"versions: {versions}")
    print(
        f"settings: max_tokens {args.max_tokens}, temperature 0.8 seeded, requests per level "
        f"{args.requests_per_slot} x concurrency (at least 16), concurrency {args.concurrency}, "
        f"torch threads {args.torch_threads or 'qslm serve default'}"
    )


def row(label: str, batching: str, c: int, m: dict) -> str:
    return (
        f"| {label} | {batching} | {c} | {m['req_s']:.2f} | {m['tok_s']:.0f} | {m['p50']:.0f} | "
        f"{m['p95']:.0f} | {m['p99']:.0f} | {m['codes']} |"
    )


def matrix(args: argparse.Namespace) -> None:
    from qslm.builds import resolve_build
    from qslm.inference.served import resolve_specs

    build = resolve_specs([args.build], Path("builds"))[0] if "@" in args.build else None
    build = build or resolve_build(args.build, Path("builds"))
    tmp = Path(tempfile.mkdtemp(prefix="qslm-bench-"))
    models = [(build.parent.name, build), ("scratch-6x384", big_model(build, tmp))]
    header(args)
    columns = (
        "model | batching | concurrency | req/s | tokens/s | p50 ms | p95 ms | p99 ms | status"
    )
    print(f"\n| {columns} |")
    print("|---|---|---|---|---|---|---|---|---|")
    results = {}
    for label, path in models:
        for batching in (False, True):
            proc, url = serve(path, batching, max(args.concurrency), args.torch_threads)
            try:
                load(url, path.parent.name, 4, 2, args.max_tokens)  # warm-up
                for c in args.concurrency:
                    n = max(16, args.requests_per_slot * c)
                    m = load(url, path.parent.name, n, c, args.max_tokens)
                    results[label, batching, c] = m
                    print(row(label, "on" if batching else "off", c, m), flush=True)
            finally:
                proc.terminate()
                proc.wait(30)
    print("\nbatching on / off:")
    for label, _ in models:
        for c in args.concurrency:
            on, off = results[label, True, c], results[label, False, c]
            print(
                f"  {label} concurrency {c}: tokens/s x{on['tok_s'] / off['tok_s']:.2f}, "
                f"p95 x{on['p95'] / off['p95']:.2f}"
            )
    shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", nargs="?", help="A build (folder, NAME@vN, builds/NAME@current).")
    parser.add_argument("--url", help="Measure a running server instead (one configuration).")
    parser.add_argument("--model", help="With --url: the model id to ask for.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests-per-slot", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument(
        "--torch-threads", type=int, help="qslm serve --torch-threads (default: its own)"
    )
    args = parser.parse_args()
    if args.url:
        header(args)
        for c in args.concurrency:
            n = max(16, args.requests_per_slot * c)
            print(row(args.model, "?", c, load(args.url, args.model, n, c, args.max_tokens)))
    elif args.build:
        matrix(args)
    else:
        parser.error("name a build, or --url and --model")


if __name__ == "__main__":
    main()
