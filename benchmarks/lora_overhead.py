"""Framework overhead of the ``lora`` trainer, and QLoRA's peak memory against fp32 LoRA.

Part 1, overhead: the same LoRA fine-tuning (same locally built Llama, same records, same
tokens, r, alpha, targets, batch, learning rate, schedule, epochs, seed, threads) run

  (a) "plain": a script a user would write with transformers' Trainer and peft directly
      (load, tokenize text + eos, wrap with peft, train, save the adapter), and
  (b) "qslm": the ``lora`` trainer through qslm's pipeline API (``run_pipeline``; its train
      stage: pre-flight, load, format/tokenize, wrap, train, save adapter and tokenizer),

each in a fresh subprocess, alternating (a, b, b, a, a, b, ...) so that machine noise hits both
alike. Tokens/second = the non-padding tokens trained on / the wall time of that work (for
qslm, the train stage's time in the build manifest). The ratio qslm / plain is reported per
pair and as the median; the target is >= 0.95.

Part 2, memory: the ``lora`` trainer on a larger locally built Llama, once with the base in
float32 and once with ``quantization = "nf4"`` (QLoRA), each in its own subprocess: peak RSS
of the process (``VmHWM``; loading and training separately), RSS after imports (the floor),
and the model's own footprint (``get_memory_footprint``). On a GPU, QLoRA's saving shows in
GPU memory; on the CPU in RSS.

Usage:  python benchmarks/lora_overhead.py [--repeats 3] [--json out.json]
Nothing is downloaded: models and tokenizers are built in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEED = 7
# Part 1: a few-million-parameter Llama, so that model compute, not bookkeeping, dominates.
OVERHEAD_MODEL = dict(
    hidden_size=256,
    intermediate_size=704,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=4,
    max_position_embeddings=128,
)
# Part 2: large enough (~100M parameters) that weights, not the Python runtime, dominate RSS.
MEMORY_MODEL = dict(
    hidden_size=1024,
    intermediate_size=2816,
    num_hidden_layers=8,
    num_attention_heads=16,
    num_key_value_heads=8,
    max_position_embeddings=128,
)
MEMORY_BATCH = 2  # small, so that weights rather than activations decide the peak
SETTINGS = dict(
    r=8,
    alpha=16.0,
    dropout=0.05,
    target_modules="all-linear",
    batch_size=8,
    learning_rate=2e-4,
    schedule="linear",
    warmup_ratio=0.0,
    epochs=1.0,
    max_length=128,
    logging_every=10,
)
SUBJECTS = ["the cat", "a dog", "the bird", "my friend", "the teacher", "our neighbour"]
VERBS = ["sees", "likes", "follows", "draws", "finds", "calls", "paints", "visits"]
OBJECTS = ["the ball", "a red house", "the old tree", "some bread", "the river", "a small boat"]


def corpus(n: int) -> list[str]:
    import random

    rng = random.Random(SEED)
    return [
        " ".join(
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
            for _ in range(rng.randint(3, 8))
        )
        for _ in range(n)
    ]


def build_base(path: Path, texts: list[str], shape: dict) -> None:
    import transformers
    from transformers import AutoModelForCausalLM, LlamaConfig

    from qslm.train.scratch import train_tokenizer

    tokenizer = train_tokenizer(texts, 1000, 2, shape["max_position_embeddings"])
    eos = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer), bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, **shape
    )
    transformers.set_seed(SEED)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)


def pipeline_toml(base: Path, corpus_file: Path, **extra) -> str:
    options = {"base_model": str(base), "threads": threads(), **SETTINGS, **extra}
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in options.items())
    return f"""
[pipeline]
name = "lora-bench"
seed = {SEED}

[data]
source = "text"
[data.options]
paths = [{json.dumps(str(corpus_file))}]
validation_fraction = 0.0

[attention]
backend = "exact"

[train]
trainer = "lora"
[train.options]
{lines}

[evaluate]
"""


def threads() -> int:
    """torch threads for both sides: ``LORA_BENCH_THREADS``, default 1. On a machine shared
    with other jobs two OpenMP threads on two cores can run 5x slower than one (the threads
    wait for each other), which would drown the difference measured here."""
    return int(os.environ.get("LORA_BENCH_THREADS", "1"))


# -- the children ---------------------------------------------------------------------------


def child_plain(work: Path) -> dict:
    """What a user writes with transformers + peft alone, on the same records qslm trains on."""
    started = time.perf_counter()
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    imported = time.perf_counter()
    texts = json.loads((work / "train_texts.json").read_text())
    s = SETTINGS
    torch.set_num_threads(threads())
    transformers.set_seed(SEED)
    t0, cpu0 = time.perf_counter(), time.process_time()
    tokenizer = AutoTokenizer.from_pretrained(work / "base")
    model = AutoModelForCausalLM.from_pretrained(work / "base", dtype=torch.float32)
    eos = tokenizer.eos_token_id
    examples = []
    for ids in tokenizer(texts)["input_ids"]:
        ids = [*ids, eos][: s["max_length"]]
        examples.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": ids})
    transformers.set_seed(SEED)
    model = get_peft_model(
        model,
        LoraConfig(
            r=s["r"],
            lora_alpha=s["alpha"],
            lora_dropout=s["dropout"],
            target_modules=s["target_modules"],
            task_type="CAUSAL_LM",
        ),
    )
    args = TrainingArguments(
        output_dir=str(work / "plain-out"),
        per_device_train_batch_size=s["batch_size"],
        learning_rate=s["learning_rate"],
        lr_scheduler_type=s["schedule"],
        num_train_epochs=s["epochs"],
        logging_steps=s["logging_every"],
        save_strategy="no",
        seed=SEED,
        data_seed=SEED,
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=examples,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
    )
    t_train = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t_train
    model.save_pretrained(work / "plain-out" / "adapter")
    tokenizer.save_pretrained(work / "plain-out" / "adapter")
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    tokens = sum(len(e["input_ids"]) for e in examples) * s["epochs"]
    return {
        "tokens": int(tokens),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "train_loop_s": train_s,
        "import_s": imported - started,
        "steps": trainer.state.global_step,
        "final_loss": trainer.state.log_history[-2].get("loss"),
    }


def child_qslm(work: Path) -> dict:
    # The plain script imports these before its clock starts; qslm imports them inside the
    # train stage (so that `qslm --help` stays light). Import them first here too, so that both
    # sides time the same work and neither pays for the imports.
    import peft  # noqa: F401
    import torch  # noqa: F401
    from transformers import (  # noqa: F401
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    from qslm.config import load_pipeline
    from qslm.pipeline import run_pipeline
    from qslm.plugins import get_registry

    cpu: dict[str, float] = {}

    def progress(message: str) -> None:  # the stage's CPU time, beside its wall time
        if message.startswith("[train] ..."):
            cpu["start"] = time.process_time()
        elif message.startswith("[train] done"):
            cpu["seconds"] = time.process_time() - cpu["start"]

    registry = get_registry()
    config = load_pipeline(str(work / "pipeline.toml"), registry, output=str(work / "builds"))
    build = run_pipeline(config, registry, progress=progress)
    manifest = json.loads((build / "manifest.json").read_text())
    train = manifest["metrics"]["train"]
    return {
        "tokens": int(train["train_tokens"]),
        "seconds": manifest["timings"]["train"],
        "cpu_seconds": cpu["seconds"],
        "steps": train["train_steps"],
        "final_loss": train["train_loss"],
        "train_records": manifest["data"]["train_records"],
    }


def child_memory(work: Path, quantization: str) -> dict:
    import torch  # noqa: F401  (the floor: RSS with the libraries imported)
    import transformers  # noqa: F401

    floor = vm_kib("VmHWM")  # not ru_maxrss: Linux carries it over from the parent at exec
    from qslm.attention.exact import ExactAttention
    from qslm.components import Dataset
    from qslm.context import RunContext
    from qslm.train.lora import LoraTrainer

    footprint: dict[str, float] = {}

    class Measured(LoraTrainer):  # the documented extension point: load_model
        def load_model(self, ctx, attention):
            model, tokenizer = super().load_model(ctx, attention)
            footprint["bytes"] = model.get_memory_footprint()
            footprint["load_peak_kib"] = vm_kib("VmHWM")
            reset_peak_rss()  # from here on, VmHWM is training's peak
            return model, tokenizer

    texts = json.loads((work / "train_texts.json").read_text())[:48]
    options = LoraTrainer.Options(
        base_model=str(work / "big"),
        quantization=quantization,
        **{
            **SETTINGS,
            "epochs": 1.0,
            "max_steps": 2,
            "max_length": 64,
            "batch_size": MEMORY_BATCH,
            "threads": threads(),
        },
    )
    ctx = RunContext(
        config=None, registry=None, build_dir=work / f"mem-{quantization}", seed=SEED,
        progress=lambda message: None,
    )  # fmt: skip
    t0 = time.perf_counter()
    artifact = Measured(options).train(
        ctx, Dataset(train=[{"text": t} for t in texts], validation=[], sha256="-"),
        ExactAttention(),
    )  # fmt: skip
    return {
        "peak_rss_mib": max(footprint["load_peak_kib"], vm_kib("VmHWM")) / 1024,
        "load_peak_rss_mib": footprint["load_peak_kib"] / 1024,
        "train_peak_rss_mib": vm_kib("VmHWM") / 1024,
        "rss_after_imports_mib": floor / 1024,
        "model_footprint_mib": footprint["bytes"] / 2**20,
        "parameters": artifact.metrics["parameters"],
        "steps": artifact.metrics["train_steps"],
        "seconds": time.perf_counter() - t0,
    }


def vm_kib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmHWM: peak RSS), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM to the current RSS (proc(5)).
    Path("/proc/self/clear_refs").write_text("5")


# -- the parent -----------------------------------------------------------------------------


def run_child(kind: str, work: Path, *extra: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--work", str(work), *extra],
        capture_output=True,
        text=True,
    )
    if result.returncode:
        sys.exit(f"the {kind} child failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def versions() -> str:
    from importlib.metadata import version

    names = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "qslm-core")
    return ", ".join(f"{n} {version(n)}" for n in names)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {threads()} usable cores, {platform.system()}, Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="pairs of (plain, qslm) runs")
    parser.add_argument("--records", type=int, default=1200, help="training records")
    parser.add_argument("--skip-memory", action="store_true", help="only part 1")
    parser.add_argument("--skip-overhead", action="store_true", help="only part 2")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--quantization", default="none", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        work = Path(args.work)
        if args.child == "plain":
            out = child_plain(work)
        elif args.child == "qslm":
            out = child_qslm(work)
        else:
            out = child_memory(work, args.quantization)
        print(json.dumps(out))
        return

    from qslm.quiet import hf_quiet

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(f"machine: {machine()}\nversions: {versions()}")
    print(f"settings: {json.dumps(SETTINGS)}, seed {SEED}")
    results: dict = {"machine": machine(), "versions": versions(), "settings": SETTINGS}
    with tempfile.TemporaryDirectory() as tmp, hf_quiet():
        work = Path(tmp)
        texts = corpus(args.records)
        (work / "corpus.txt").write_text("\n\n".join(texts))
        build_base(work / "base", texts, OVERHEAD_MODEL)
        (work / "pipeline.toml").write_text(pipeline_toml(work / "base", work / "corpus.txt"))
        # the plain script trains on exactly the records the pipeline's text source yields
        from qslm.config import load_pipeline
        from qslm.context import RunContext
        from qslm.plugins import get_registry

        registry = get_registry()
        config = load_pipeline(str(work / "pipeline.toml"), registry)
        ctx = RunContext(config=config, registry=registry, build_dir=work / "data", seed=SEED)
        records = config.data.create().load(ctx).train
        (work / "train_texts.json").write_text(json.dumps([r["text"] for r in records]))

        pairs = []
        if not args.skip_overhead:
            print(f"\nPart 1: overhead, {len(records)} records, model {OVERHEAD_MODEL}")
        for i in range(0 if args.skip_overhead else args.repeats):
            order = ("plain", "qslm") if i % 2 == 0 else ("qslm", "plain")
            runs = {kind: run_child(kind, work) for kind in order}
            p, q = runs["plain"], runs["qslm"]
            tps_p, tps_q = p["tokens"] / p["seconds"], q["tokens"] / q["seconds"]
            cpu_ratio = (q["tokens"] / q["cpu_seconds"]) / (p["tokens"] / p["cpu_seconds"])
            pairs.append({"plain": p, "qslm": q, "ratio": tps_q / tps_p, "cpu_ratio": cpu_ratio})
            print(
                f"  pair {i + 1} ({order[0]} first): plain {tps_p:8.0f} tok/s "
                f"({p['tokens']} tokens, {p['steps']} steps, {p['seconds']:.1f}s, loop "
                f"{p['train_loop_s']:.1f}s)   qslm {tps_q:8.0f} tok/s ({q['tokens']} tokens, "
                f"{q['steps']} steps, {q['seconds']:.1f}s)   ratio {tps_q / tps_p:.3f}; per "
                f"CPU-second: plain {p['tokens'] / p['cpu_seconds']:.0f}, qslm "
                f"{q['tokens'] / q['cpu_seconds']:.0f}, ratio {cpu_ratio:.3f}"
            )
        if pairs:
            ratios = [x["ratio"] for x in pairs]
            tps_plain = statistics.median(
                x["plain"]["tokens"] / x["plain"]["seconds"] for x in pairs
            )
            tps_qslm = statistics.median(x["qslm"]["tokens"] / x["qslm"]["seconds"] for x in pairs)
            print(
                f"  median: plain {tps_plain:.0f} tok/s, qslm {tps_qslm:.0f} tok/s, ratio "
                f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
                "target >= 0.95"
            )
            cpu_ratios = [x["cpu_ratio"] for x in pairs]
            print(
                f"  median ratio of tokens per CPU-second (less sensitive to other load on the "
                f"machine): {statistics.median(cpu_ratios):.3f} (min {min(cpu_ratios):.3f}, max "
                f"{max(cpu_ratios):.3f})"
            )
            results["overhead"] = {
                "pairs": pairs,
                "median_ratio": statistics.median(ratios),
                "median_cpu_ratio": statistics.median(cpu_ratios),
            }

        if not args.skip_memory:
            build_base(work / "big", texts, MEMORY_MODEL)
            print(
                f"\nPart 2: peak memory, model {MEMORY_MODEL}, 2 steps, batch {MEMORY_BATCH} "
                "x 64 tokens"
            )
            memory = {}
            for quantization in ("none", "nf4"):
                m = run_child("memory", work, "--quantization", quantization)
                memory[quantization] = m
                name = "fp32 LoRA" if quantization == "none" else "QLoRA NF4"
                print(
                    f"  {name:<10} {m['parameters'] / 1e6:.1f}M parameters: peak RSS "
                    f"{m['peak_rss_mib']:.0f} MiB (loading {m['load_peak_rss_mib']:.0f}, "
                    f"training {m['train_peak_rss_mib']:.0f}; after imports "
                    f"{m['rss_after_imports_mib']:.0f}), model footprint "
                    f"{m['model_footprint_mib']:.0f} MiB, {m['seconds']:.1f}s"
                )
            n, q = memory["none"], memory["nf4"]
            above_q = q["peak_rss_mib"] - q["rss_after_imports_mib"]
            above_n = n["peak_rss_mib"] - n["rss_after_imports_mib"]
            print(
                f"  QLoRA / fp32: peak RSS {q['peak_rss_mib'] / n['peak_rss_mib']:.2f} "
                f"(above imports {above_q / above_n:.2f}), training peak "
                f"{q['train_peak_rss_mib'] / n['train_peak_rss_mib']:.2f}, "
                f"model footprint {q['model_footprint_mib'] / n['model_footprint_mib']:.2f}"
            )
            results["memory"] = memory
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
