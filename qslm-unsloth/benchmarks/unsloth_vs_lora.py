"""Tokens per second and peak memory of the ``unsloth`` trainer against the ``lora`` trainer.

Same base model, same data, same LoRA settings (r, alpha, dropout 0, every linear layer), same
batch, sequence length and steps; each trainer runs in its own fresh process (Unsloth patches
transformers when imported, and peak memory must be each run's own).

    python qslm-unsloth/benchmarks/unsloth_vs_lora.py                 # GPU; builds its model
    python qslm-unsloth/benchmarks/unsloth_vs_lora.py --model PATH    # local or cached Hub
    python qslm-unsloth/benchmarks/unsloth_vs_lora.py --cpu           # no GPU: a small CPU run

Without a GPU it says so and exits 0, unless ``--cpu`` asks for a CPU comparison (Unsloth's CPU
fallback against plain peft; labelled as such: it says nothing about Unsloth's GPU kernels).

Tokens per second are measured between the first and the last optimiser step (the first step
pays for kernel compilation and warm-up), from the training log's timestamps; every example
is cut to exactly ``--seq-len`` tokens, so a step is ``batch x seq-len`` tokens. Peak memory is
``torch.cuda.max_memory_allocated`` on a GPU, the process's peak resident set size on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

SIZES = {
    # name: (hidden, layers, heads, kv_heads, intermediate, vocab)
    "tiny": (64, 2, 4, 2, 128, 512),
    "small": (512, 8, 8, 8, 1376, 4000),
    "medium": (1024, 16, 16, 8, 2816, 8000),
}
SENTENCE = (
    "the model reads a short text and predicts the next token from the ones before it while "
    "attention weighs every earlier position and a small adapter learns what the base lacks"
)
WORDS = SENTENCE.split(" ")


def texts(n: int, words: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) + "." for _ in range(n)]


def gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def build_model(folder: Path, size: str, seq_len: int) -> None:
    """An untrained Llama of the preset size and a BPE tokenizer trained on the data."""
    import transformers
    from transformers import AutoModelForCausalLM, LlamaConfig

    from qslm.train.scratch import train_tokenizer

    hidden, layers, heads, kv, inter, vocab = SIZES[size]
    tok = train_tokenizer(texts(500, 200), vocab, 2, seq_len)
    eos = tok.eos_token_id
    transformers.set_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        max_position_embeddings=max(seq_len, 64),
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tok.save_pretrained(folder)


def child(args: argparse.Namespace) -> None:
    """One training run in this process; prints one JSON line with the measurements."""
    from qslm.api import Dataset, RunContext
    from qslm.attention.exact import ExactAttention

    common = dict(
        base_model=args.model,
        r=args.r,
        alpha=2.0 * args.r,
        dropout=0.0,
        target_modules="all-linear",
        template="plain",
        max_length=args.seq_len,
        batch_size=args.batch_size,
        learning_rate=2e-4,
        max_steps=args.steps,
        warmup_ratio=0.0,
        logging_every=1,
        bf16=args.bf16,
    )
    if args.child == "unsloth":
        from qslm_unsloth.trainer import UnslothTrainer as Trainer

        options = dict(
            common,
            load_in_4bit=args.load_in_4bit,
            dtype="bfloat16" if args.bf16 else "float32",
            gradient_checkpointing="unsloth" if args.gradient_checkpointing else False,
        )
    else:
        from qslm.train.lora import LoraTrainer as Trainer

        options = dict(
            common,
            quantization="nf4" if args.load_in_4bit else "none",
            gradient_checkpointing=args.gradient_checkpointing,
        )
    records = [{"text": t} for t in texts(args.batch_size * args.steps, 4 * args.seq_len)]
    data = Dataset(train=records, validation=[], sha256="benchmark")
    build = Path(tempfile.mkdtemp(prefix=f"bench-{args.child}-"))
    ctx = RunContext(
        config=None, registry=None, build_dir=build, seed=0, progress=lambda line: None
    )
    trainer = Trainer(Trainer.Options(**options))
    started = time.perf_counter()
    artifact = trainer.train(ctx, data, ExactAttention())
    total = time.perf_counter() - started

    import torch

    steps = [
        json.loads(line)
        for line in (build / "train_log.jsonl").read_text().splitlines()
        if '"event": "train"' in line
    ]
    first, last = steps[0], steps[-1]
    timed_steps = last["step"] - first["step"]
    seconds = last["time"] - first["time"]
    tokens = timed_steps * args.batch_size * args.seq_len
    cuda = torch.cuda.is_available()
    peak = torch.cuda.max_memory_allocated() if cuda else _peak_rss()
    print(
        json.dumps(
            {
                "trainer": args.child,
                "tokens_per_s": tokens / seconds if seconds > 0 else float("nan"),
                "timed_steps": timed_steps,
                "seconds": seconds,
                "wall_s": total,
                "peak_memory_bytes": peak,
                "peak_memory_kind": "cuda max_memory_allocated" if cuda else "process peak RSS",
                "final_loss": artifact.metrics.get("train_loss"),
                "train_examples": artifact.metrics.get("train_examples"),
                "trainable_parameters": artifact.metrics.get("trainable_parameters"),
                "parameters": artifact.metrics.get("parameters"),
                "unsloth": ctx.manifest.get("unsloth"),
            }
        )
    )


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "bitsandbytes", "unsloth", "unsloth_zoo"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_child(args: argparse.Namespace, trainer: str) -> dict:
    cmd = [sys.executable, __file__, "--child", trainer, "--model", str(args.model)]
    cmd += ["--steps", str(args.steps), "--batch-size", str(args.batch_size)]
    cmd += ["--seq-len", str(args.seq_len), "--r", str(args.r)]
    cmd += ["--bf16"] * args.bf16 + ["--load-in-4bit"] * args.load_in_4bit
    cmd += ["--gradient-checkpointing"] * args.gradient_checkpointing
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"the {trainer} run failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        help="a local model folder or a cached Hub name; default: "
        "an untrained Llama of --size, built locally",
    )
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default=None,
        help="preset size of the built model (default: medium on a GPU, tiny with --cpu)",
    )
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps per run")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=None, help="tokens per example")
    parser.add_argument("--r", type=int, default=16, help="LoRA rank (alpha = 2r)")
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 (Unsloth: bf16 weights; lora: bf16 autocast on float32 weights)",
    )
    parser.add_argument("--load-in-4bit", action="store_true", help="QLoRA: a 4-bit NF4 base")
    parser.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="Unsloth's checkpointing for unsloth, the Trainer's for lora",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="without a GPU, run a small CPU comparison instead of exiting",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", choices=["unsloth", "lora"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    gpu = gpu_name()
    if gpu is None and not args.cpu:
        print(
            "No GPU found (torch.cuda.is_available() is False): this benchmark compares "
            "Unsloth's GPU kernels with plain peft, so there is nothing to measure here. "
            "Run it on a machine with an NVIDIA GPU, or pass --cpu for a small comparison "
            "on Unsloth's CPU fallback (which uses no Unsloth kernels)."
        )
        return
    device = gpu or f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    args.size = args.size or ("medium" if gpu else "tiny")
    args.steps = args.steps or (30 if gpu else 8)
    args.seq_len = args.seq_len or (512 if gpu else 64)
    with tempfile.TemporaryDirectory(prefix="unsloth-bench-") as tmp:
        if args.model is None:
            args.model = str(Path(tmp) / "model")
            build_model(Path(args.model), args.size, args.seq_len)
            model_desc = f"untrained Llama, size {args.size} {SIZES[args.size]}"
        else:
            model_desc = args.model
        results = [run_child(args, "lora"), run_child(args, "unsloth")]

    label = "GPU" if gpu else "CPU ONLY (Unsloth CPU fallback, no Unsloth kernels)"
    print(f"\nunsloth vs lora: {label}")
    print(f"device: {device}")
    print(f"versions: {json.dumps(versions())}")
    print(
        f"model: {model_desc}; steps {args.steps} (timed: the last {args.steps - 1}), batch "
        f"{args.batch_size}, seq len {args.seq_len}, LoRA r {args.r} alpha {2 * args.r} on "
        f"all linear layers, bf16 {args.bf16}, 4-bit {args.load_in_4bit}, gradient "
        f"checkpointing {args.gradient_checkpointing}"
    )
    print(f"\n{'trainer':<9} {'tokens/s':>10} {'peak memory':>14}  {'final loss':>10}")
    for r in results:
        print(
            f"{r['trainer']:<9} {r['tokens_per_s']:>10.0f} "
            f"{r['peak_memory_bytes'] / 2**20:>11.0f} MiB  {r['final_loss']:>10.4f}"
        )
    lora, unsloth = results
    print(
        f"\nunsloth / lora: {unsloth['tokens_per_s'] / lora['tokens_per_s']:.2f}x tokens/s, "
        f"{unsloth['peak_memory_bytes'] / lora['peak_memory_bytes']:.2f}x peak memory "
        f"({lora['peak_memory_kind']})"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "label": label,
                    "device": device,
                    "versions": versions(),
                    "settings": {k: v for k, v in vars(args).items() if k != "json"},
                    "results": results,
                },
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
