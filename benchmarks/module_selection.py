"""QUBO-chosen LoRA modules against random ones at the same parameter budget, and against
training every module (the reference, with a bigger budget).

A small Llama-style base is pretrained from scratch (qslm's scratch trainer) on quickstart
corpus files 01-08; LoRA then adapts it to files 09-12 (quantum annealing, QAOA, sampled
attention, benchmarking: new vocabulary and topics). Every 5th 64-token block of those files
is held out. Each condition trains the same LoRA (every linear layer of every block, r=8)
for the same steps from the same seed (same initial adapter, same batches):

- ``all``: every module, every step (budget = all LoRA parameters; the reference);
- ``qubo``: ``[train.select_modules]`` as qslm runs it (tabu, redundancy weight 1);
- ``qubo_w0``: the same with redundancy_weight 0 (importance only), to see what redundancy adds;
- ``random``: a random choice filling the same budget, re-drawn every window.

Reported: the final held-out loss (mean token cross-entropy), mean +- std over seeds, and
the per-seed difference to ``random`` (paired: same seed, same data order).

Usage:  python benchmarks/module_selection.py [--seeds 3] [--steps 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from qslm.bench.solvers import machine_info
from qslm.components import Dataset
from qslm.context import RunContext
from qslm.plugins import get_registry
from qslm.train.module_select import ModuleSelectOptions, ModuleSelector, make_callback

CORPUS = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "corpus"
PRETRAIN_FILES, ADAPT_FILES = range(1, 9), range(9, 13)
BASE = dict(
    vocab_size=512,
    layers=2,
    hidden_size=128,
    heads=4,
    context_length=64,
    batch_size=16,
    learning_rate=3e-3,
    dropout=0.1,
    max_steps=200,
    logging_every=100,
    threads=2,
)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class RandomSelector(ModuleSelector):
    """The control: modules in a random order, each kept while it fits the budget, re-drawn
    every window (same budget, same windows, same freezing as the QUBO selector)."""

    def decide(self, step: int) -> dict:
        self.importance()  # reset the window's accumulators, as the QUBO selector does
        rng = np.random.default_rng([self.seed, len(self.decisions)])
        chosen, used = np.zeros(len(self.names), dtype=bool), 0
        for i in rng.permutation(len(self.names)):
            if used + self.counts[i] <= self.budget:
                chosen[i], used = True, used + int(self.counts[i])
        self.chosen = chosen
        self.apply()
        record = {"step": step, "chosen": [n for n, c in zip(self.names, chosen, strict=True) if c]}
        record.update(params=used, budget=self.budget, solver="random", fallback_used=False)
        self.decisions.append(record)
        return record


def files(numbers: range) -> list[str]:
    return [next(CORPUS.glob(f"{n:02d}-*.md")).read_text(encoding="utf-8") for n in numbers]


def pretrain(workdir: Path) -> Path:
    """The base model (built once, then reused from ``workdir``)."""
    model_dir = workdir / "base" / "model"
    if (model_dir / "model.safetensors").exists():
        return model_dir
    from qslm.attention.exact import ExactAttention
    from qslm.train.scratch import ScratchTrainer

    paragraphs = [p for text in files(PRETRAIN_FILES) for p in text.split("\n\n") if p.strip()]
    data = Dataset([{"text": p} for p in paragraphs], [], "pretrain")
    ctx = RunContext(config=None, registry=None, build_dir=workdir / "base", seed=0)
    ctx.progress = lambda line: None
    ScratchTrainer(ScratchTrainer.Options(**BASE)).train(ctx, data, ExactAttention())
    return model_dir


def blocks(tokenizer, length: int) -> tuple[list, list]:
    """64-token blocks of the adaptation files; every 5th held out."""
    import torch

    ids: list[int] = []
    for text in files(ADAPT_FILES):
        ids += tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
    rows = [torch.tensor(ids[i : i + length]) for i in range(0, len(ids) - length + 1, length)]
    train = [r for i, r in enumerate(rows) if i % 5 != 4]
    held = [r for i, r in enumerate(rows) if i % 5 == 4]
    return train, held


def held_out_loss(model, held) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        batch = torch.stack(held)
        loss = model(input_ids=batch, labels=batch).loss
    model.train()
    return float(loss)


def run(condition: str, seed: int, args, model_dir: Path, data, workdir: Path) -> dict:
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    train_rows, held = data
    transformers.set_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, lora_dropout=0.0)
    model = get_peft_model(base, lora)
    callbacks = []
    selector = None
    if condition != "all":
        opts = ModuleSelectOptions(
            every=args.every,
            warmup=args.warmup,
            budget=args.budget,
            redundancy_weight=0.0 if condition == "qubo_w0" else 1.0,
        )
        reg = get_registry()
        solvers = [(n, reg.get("qubo_solver", n).load()()) for n in ("tabu", "anneal")]
        cls = RandomSelector if condition == "random" else ModuleSelector
        selector = cls(model, opts, solvers, seed=seed)
        callbacks.append(make_callback(selector))
    targs = TrainingArguments(
        output_dir=str(workdir / "checkpoints"),
        per_device_train_batch_size=16,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_steps=args.steps,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=seed,
        data_seed=seed,
        dataloader_pin_memory=False,
        use_cpu=True,
    )
    dataset = [{"input_ids": r, "labels": r} for r in train_rows]
    started = time.perf_counter()
    Trainer(model=model, args=targs, train_dataset=dataset, callbacks=callbacks).train()
    wall = time.perf_counter() - started
    total = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    decisions = selector.decisions if selector else []
    after = [d["params"] for d in decisions]
    return {
        "condition": condition,
        "seed": seed,
        "held_out_loss": held_out_loss(model, held),
        "train_s": round(wall, 2),
        "lora_params": total,
        "params_per_window": round(float(np.mean(after)), 1) if after else total,
        "select_s": round(sum(d.get("wall_s", 0.0) for d in decisions), 3),
        "fallbacks": sum(bool(d["fallback_used"]) for d in decisions),
        "chosen": [d["chosen"] for d in decisions],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--budget", type=float, default=0.25)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--conditions", default="all,qubo,qubo_w0,random")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/qslm-bench-module-selection"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    import torch
    import transformers
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(2)
    info = {**machine_info(), "torch": torch.__version__, "transformers": transformers.__version__}
    print(json.dumps(info))
    started = time.perf_counter()
    model_dir = pretrain(args.workdir)
    print(f"base model: {model_dir} ({time.perf_counter() - started:.0f}s)")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data = blocks(tokenizer, BASE["context_length"])
    print(f"adaptation blocks: {len(data[0])} train, {len(data[1])} held out")
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "workdir")}
    print(f"settings: {settings}; LoRA r=8 on {', '.join(TARGETS)}")

    results = []
    for seed in range(args.seeds):
        for cond in args.conditions.split(","):
            r = run(cond, seed, args, model_dir, data, args.workdir)
            results.append(r)
            print(
                f"  seed {seed} {cond:8s} held-out loss {r['held_out_loss']:.4f}  "
                f"params/window {r['params_per_window']:.0f}/{r['lora_params']}  "
                f"train {r['train_s']:.0f}s (selection {r['select_s']:.2f}s)",
                flush=True,
            )
    print("\ncondition  held-out loss (mean +- std)   minus random, paired (mean +- std)")
    by = {c: [r for r in results if r["condition"] == c] for c in args.conditions.split(",")}
    for cond, rs in by.items():
        losses = [r["held_out_loss"] for r in rs]
        line = f"{cond:9s}  {statistics.mean(losses):.4f} +- {_std(losses):.4f}"
        if "random" in by and cond != "random":
            diff = [
                a["held_out_loss"] - b["held_out_loss"]
                for a, b in zip(rs, by["random"], strict=True)
            ]
            line += f"             {statistics.mean(diff):+.4f} +- {_std(diff):.4f}"
        print(line)
    print(f"total {time.perf_counter() - started:.0f}s")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "settings": settings, "runs": results}))
    return 0


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


if __name__ == "__main__":
    sys.exit(main())
