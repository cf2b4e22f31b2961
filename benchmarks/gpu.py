"""One prepared GPU check: LoRA fine-tuning speed, peak GPU memory and loss of qslm's trainers
against plain transformers + peft, on models of real architectures with random weights, then
``qslm serve`` on the merged result at concurrency 1 and 32.

Models are built from architecture configs written below (Qwen2.5-0.5B- and Llama-3.2-1B-shaped;
Qwen2.5-3B-shaped with ``--models``), with random weights: nothing is downloaded, and speed and
memory depend on the shapes, not on the weights' values. Each is trained for a fixed number of
steps at sequence length 1024 by:

  reference          plain transformers Trainer + peft, the base loaded in bf16
  qslm-lora-bf16     qslm's ``lora`` trainer, bf16 = true (its base stays float32, autocast bf16)
  qslm-lora-nf4      qslm's ``lora`` trainer, quantization = "nf4" (QLoRA, bf16 compute)
  qslm-unsloth-bf16  qslm-unsloth's trainer, where unsloth imports (its own process)

with the same records, LoRA settings (r 16, alpha 32, every linear layer), batch, learning rate,
schedule and seed, so the same model learns the same way: the losses after N steps are printed
beside each other. Throughput = trained tokens / wall time of the steps after the warm-up ones
(``torch.cuda.synchronize`` at each step end); memory = ``torch.cuda.max_memory_allocated``.

    python benchmarks/gpu.py --out results/            # on a CUDA machine (see docs/how-to/gpu.md)
    python benchmarks/gpu.py --cpu --out /tmp/gpu-cpu  # tiny configs on the CPU: the CI check

Without CUDA and without ``--cpu`` it refuses in one line (exit 2). Writes ``gpu.json`` and
``gpu.md`` (a Markdown table) to ``--out``, after every variant, so a run cut short keeps what
it measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_serve import serve_benchmark
from gpu_train import CLOCK, VARIANTS, build_model, run_variant

# The public configs' shapes (vocabulary, widths, depth, heads); rope settings are left at the
# defaults, which change no cost.
MODELS: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": dict(
        model_type="qwen2",
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
    ),
    "llama-3.2-1b": dict(
        model_type="llama",
        vocab_size=128256,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    ),
    "qwen2.5-3b": dict(
        model_type="qwen2",
        vocab_size=151936,
        hidden_size=2048,
        intermediate_size=11008,
        num_hidden_layers=36,
        num_attention_heads=16,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
    ),
}
TINY = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
)
GPU_SETTINGS = dict(
    seq_len=1024,
    batch=8,
    steps=30,
    warmup_steps=5,
    bf16=True,
    serve_concurrency=[1, 32],
    serve_requests_per_slot=1,
    serve_new_tokens=64,
)
CPU_SETTINGS = dict(
    seq_len=64,
    batch=2,
    steps=3,
    warmup_steps=1,
    bf16=False,
    serve_concurrency=[1, 8],
    serve_requests_per_slot=1,
    serve_new_tokens=8,
)
ORDER = ["reference", *VARIANTS]


def model_config(name: str, cpu: bool) -> dict[str, Any]:
    config = dict(MODELS[name])
    if cpu:  # same architecture, tiny sizes
        config.update(TINY, head_dim=16) if "head_dim" in config else config.update(TINY)
    return config


def unavailable(variant: str, cpu: bool) -> str | None:
    """Why ``variant`` cannot run here, or None."""
    if variant == "qslm-lora-nf4" and importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not installed"
    if variant.startswith("qslm-unsloth"):
        if cpu:
            return "Unsloth's kernels need CUDA (its CPU fallback is tested in tests/unsloth)"
        for module in ("unsloth", "qslm_unsloth"):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
    return None


def environment(cpu: bool) -> dict[str, Any]:
    import torch

    versions = {}
    for name in (
        "torch",
        "transformers",
        "peft",
        "accelerate",
        "bitsandbytes",
        "unsloth",
        "huggingface_hub",
        "qslm-core",
        "qslm-unsloth",
    ):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    device = "cpu" if cpu else torch.cuda.get_device_name(0)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "device": device,
        "gpu_memory_bytes": None if cpu else torch.cuda.get_device_properties(0).total_memory,
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "versions": versions,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def in_subprocess(variant: str, model_dir: Path, work: Path, s: dict[str, Any]) -> dict:
    """Run one variant in a fresh process (Unsloth must be imported before transformers)."""
    spec = work / f"{variant}.spec.json"
    out = work / f"{variant}.result.json"
    spec.write_text(json.dumps({"model_dir": str(model_dir), "work": str(work), "settings": s}))
    cmd = [sys.executable, __file__, "--worker", variant, "--spec", str(spec), "--result", str(out)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        return {"error": "worker did not finish within 240 s"}
    if proc.returncode != 0 or not out.is_file():
        return {"error": f"worker exited {proc.returncode}: {proc.stderr.strip()[-1500:]}"}
    return json.loads(out.read_text())


def worker(variant: str, spec_path: Path, result_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    if variant.startswith("qslm-unsloth"):
        import unsloth  # noqa: F401  (before transformers, as Unsloth requires)
    CLOCK.install()
    result = run_variant(variant, Path(spec["model_dir"]), Path(spec["work"]), spec["settings"])
    result_path.write_text(json.dumps(result))


def run_model(name: str, args: argparse.Namespace, s: dict, work: Path, report: dict) -> None:
    """Build one model and train every variant on it, saving the report after each."""
    entry = report["models"].setdefault(name, {"config": model_config(name, args.cpu)})
    model_dir = work / name / "base"
    started = time.perf_counter()
    build_model(model_dir, entry["config"], "cpu" if args.cpu else "cuda")
    entry["build_s"] = round(time.perf_counter() - started, 1)
    results = entry.setdefault("variants", {})
    for variant in ORDER:
        if variant not in args.variants:
            continue
        why = unavailable(variant, args.cpu)
        if why is None and time.perf_counter() - START > args.budget_s:
            why = f"over the time budget of {args.budget_s} s"
        if why is not None:
            results[variant] = {"skipped": why}
        else:
            where = work / name / variant
            where.mkdir(parents=True, exist_ok=True)
            merge = variant == "qslm-lora-bf16" and name == args.models[0] and args.serve
            settings = {**s, "device": "cpu" if args.cpu else "cuda", "merge": merge}
            try:
                if variant.startswith("qslm-unsloth"):
                    results[variant] = in_subprocess(variant, model_dir, where, settings)
                else:
                    results[variant] = run_variant(variant, model_dir, where, settings)
            except Exception as exc:  # one failing variant is a row of the table, not the end
                results[variant] = {"error": f"{type(exc).__name__}: {str(exc)[:1500]}"}
        print(f"{name} {variant}: {summary(results[variant])}", file=sys.stderr, flush=True)
        add_ratios(entry)
        write_report(report, args.out)


def summary(result: dict[str, Any]) -> str:
    if "tokens_per_s" in result:
        peak = result.get("peak_gpu_bytes")
        mem = f", peak {peak / 2**30:.2f} GiB" if peak else ""
        return f"{result['tokens_per_s']:.0f} tokens/s{mem}, final loss {result['final_loss']:.4f}"
    return result.get("skipped") or result.get("error", "?")


def add_ratios(entry: dict[str, Any]) -> None:
    """Each variant's throughput, memory and final loss against the reference."""
    ref = entry.get("variants", {}).get("reference", {})
    for result in entry.get("variants", {}).values():
        if "tokens_per_s" not in result or "tokens_per_s" not in ref:
            continue
        result["speed_vs_reference"] = result["tokens_per_s"] / ref["tokens_per_s"]
        if result.get("peak_gpu_bytes") and ref.get("peak_gpu_bytes"):
            result["memory_vs_reference"] = result["peak_gpu_bytes"] / ref["peak_gpu_bytes"]
        if result.get("final_loss") is not None and ref.get("final_loss") is not None:
            result["loss_minus_reference"] = result["final_loss"] - ref["final_loss"]


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    s = report["settings"]
    lines = [
        f"GPU check, {env['date']}, {env['device']}; "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        f"`{env['command']}`; seq len {s['seq_len']}, batch {s['batch']}, {s['steps']} steps "
        f"({s['warmup_steps']} warm-up steps not timed), LoRA r 16 alpha 32 on all linear layers",
        "",
        "| model | variant | tokens/s | x reference | peak GPU GiB | x reference "
        "| loss step 1 | loss step N | minus reference |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, entry in report["models"].items():
        for variant, r in entry.get("variants", {}).items():
            if "tokens_per_s" not in r:
                why = r.get("skipped") or r.get("error", "")
                lines.append(f"| {name} | {variant} | {why.splitlines()[0][:120]} |||||||")
                continue
            peak = r.get("peak_gpu_bytes")
            lines.append(
                f"| {name} | {variant} | {r['tokens_per_s']:.0f} "
                f"| {_fmt(r.get('speed_vs_reference'), '.2f')} "
                f"| {_fmt(peak / 2**30 if peak else None, '.2f')} "
                f"| {_fmt(r.get('memory_vs_reference'), '.2f')} | {_fmt(r['first_loss'], '.4f')} "
                f"| {_fmt(r['final_loss'], '.4f')} "
                f"| {_fmt(r.get('loss_minus_reference'), '+.4f')} |"
            )
    serve = report.get("serve")
    if serve:
        lines += ["", f"`qslm serve` on the merged {serve.get('of', '')} build:", ""]
        if "error" in serve:
            lines.append(f"failed: {serve['error'].splitlines()[0][:300]}")
        for run in serve.get("runs", []):
            lines.append(
                f"- concurrency {run['concurrency']}: {run['tokens_per_s']:.0f} tokens/s "
                f"({run['requests']} requests x {run['max_new_tokens']} new tokens, "
                f"p50 latency {run['p50_latency_s']:.2f} s, API {run['api']})"
            )
    setup = report.get("setup_s")
    lines += [
        "",
        f"whole run: {report.get('total_s', '?')} s"
        + (f", after {setup:.0f} s of installs" if setup is not None else ""),
    ]
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def write_report(report: dict[str, Any], out: Path) -> None:
    report["total_s"] = round(time.perf_counter() - START, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "gpu.md").write_text(markdown(report))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="Tiny configs on the CPU (the CI check).")
    p.add_argument(
        "--models",
        default="qwen2.5-0.5b,llama-3.2-1b",
        help=f"Comma-separated, of: {', '.join(MODELS)}.",
    )
    p.add_argument("--variants", default=",".join(ORDER), help="Comma-separated subset.")
    p.add_argument("--steps", type=int, default=None, help="Optimiser steps per variant.")
    p.add_argument("--no-serve", dest="serve", action="store_false", help="Skip qslm serve.")
    p.add_argument(
        "--budget-s",
        type=float,
        default=400.0,
        help="Start no variant after this many seconds (the device's 8 minutes "
        "include the installs).",
    )
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-results")))
    p.add_argument("--work", type=Path, default=None, help="Scratch folder (default: temp).")
    p.add_argument(
        "--setup-s",
        type=float,
        default=None,
        help="Seconds the installs took (gpu_device.sh passes it), for the report.",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [m for m in args.models if m not in MODELS] + [
        v for v in args.variants if v not in ORDER
    ]
    if unknown:
        p.error(f"unknown model or variant: {', '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.spec, args.result)
        return 0
    import torch

    if not args.cpu and not torch.cuda.is_available():
        print(
            f"benchmarks/gpu.py: no CUDA device (torch {torch.__version__} sees none); "
            "run it on a GPU machine, or pass --cpu for the tiny CPU check",
            file=sys.stderr,
        )
        return 2
    s = dict(CPU_SETTINGS if args.cpu else GPU_SETTINGS)
    if args.steps:
        s["steps"], s["warmup_steps"] = args.steps, min(s["warmup_steps"], args.steps - 1)
    report: dict[str, Any] = {"environment": environment(args.cpu), "settings": s, "models": {}}
    report["setup_s"] = args.setup_s
    CLOCK.install()
    with tempfile.TemporaryDirectory(prefix="qslm-gpu-") as tmp:
        work = args.work or Path(tmp)
        for name in args.models:
            run_model(name, args, s, work, report)
        first = report["models"][args.models[0]]["variants"].get("qslm-lora-bf16", {})
        if args.serve and time.perf_counter() - START > args.budget_s:
            report["serve"] = {"error": f"skipped: over the time budget of {args.budget_s} s"}
        elif args.serve and first.get("build"):
            report["serve"] = {
                "of": args.models[0],
                **serve_benchmark(Path(first["build"]), work, s),
            }
        write_report(report, args.out)
    print(markdown(report))
    failed = [
        f"{m} {v}"
        for m, e in report["models"].items()
        for v, r in e["variants"].items()
        if "error" in r
    ]
    if "error" in report.get("serve", {}):
        failed.append("serve")
    if failed:
        print(f"benchmarks/gpu.py: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


START = time.perf_counter()

if __name__ == "__main__":
    sys.exit(main())
