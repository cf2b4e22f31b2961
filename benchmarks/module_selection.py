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
- ``knapsack``: the classical baseline, greedy importance per parameter done exactly: the
  QUBO without its quadratic terms (the same window importances and budget) solved as a 0/1
  knapsack by HiGHS's MIP (``scipy.optimize.milp``, optimality proven);
- ``random``: a random choice filling the same budget, re-drawn every window.

Reported: the final held-out loss (mean token cross-entropy), mean +- std over seeds, and
the per-seed difference to ``random`` and to ``knapsack`` (paired: same seed, same data
order); for each QUBO window, whether the redundancy terms changed the choice (qubo against
qubo_w0) and how much importance the QUBO choice keeps of the knapsack optimum.

``--rank`` and ``--init`` change the LoRA: ``--init pissa`` starts each adapter on the
principal input directions of its pretrained weight (peft's PiSSA), so modules that read
the same residual stream (q/k/v, gate/up) start redundant -- the model where the quadratic
terms could matter.

Usage:  python benchmarks/module_selection.py [--seeds 3] [--steps 60] [--json out.json]
        python benchmarks/module_selection.py --init pissa --conditions qubo,knapsack,random
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from paired import describe, paired  # benchmarks/paired.py, beside this file

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


class KnapsackSelector(ModuleSelector):
    """Greedy importance per parameter done exactly: the window's QUBO without its quadratic
    terms (same importances, same budget) as a 0/1 knapsack."""

    def decide(self, step: int) -> dict:
        started = time.perf_counter()
        imp = self.importance()
        self.chosen = knapsack(imp, self.counts, self.budget)
        self.apply()
        names = [n for n, c in zip(self.names, self.chosen, strict=True) if c]
        record = {"step": step, "chosen": names}
        record.update(params=int(self.counts[self.chosen].sum()), budget=self.budget)
        record.update(solver="knapsack", fallback_used=False)
        record.update(wall_s=round(time.perf_counter() - started, 4))
        self.decisions.append(record)
        return record


class ComparingSelector(ModuleSelector):
    """The QUBO selector as qslm runs it, also noting per window the importance its choice
    keeps and the knapsack optimum of the same importances (the linear part's best)."""

    def importance(self) -> np.ndarray:
        self.window_importance = super().importance()
        return self.window_importance

    def decide(self, step: int) -> dict:
        record = super().decide(step)
        imp = self.window_importance
        best = knapsack(imp, self.counts, self.budget)
        record["importance_kept"] = round(float(imp[self.chosen].sum()), 6)
        record["importance_knapsack"] = round(float(imp[best].sum()), 6)
        record["same_as_knapsack"] = bool(np.array_equal(best, self.chosen))
        return record


def knapsack(values: np.ndarray, weights: np.ndarray, capacity: int) -> np.ndarray:
    """The 0/1 knapsack optimum (a mask), proven by HiGHS's branch and bound through
    ``scipy.optimize.milp``: scipy is a core dependency and the solver is the field's, where a
    dynamic programme would be our own code (and the exact plugin solves QUBOs, not this)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    m = len(values)
    row = LinearConstraint(np.asarray(weights, dtype=float)[None, :], 0, capacity)
    res = milp(
        -np.asarray(values, dtype=float),
        constraints=row,
        integrality=np.ones(m),
        bounds=Bounds(0, 1),
        options={"mip_rel_gap": 0.0},
    )
    if res.status != 0:
        raise RuntimeError(f"knapsack: HiGHS did not prove an optimum ({res.message})")
    return np.asarray(res.x) > 0.5


SELECTORS = {"random": RandomSelector, "knapsack": KnapsackSelector}


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
    init = "pissa_niter_4" if args.init == "pissa" else True
    lora = LoraConfig(
        r=args.rank,
        lora_alpha=2 * args.rank,
        target_modules=TARGETS,
        lora_dropout=0.0,
        init_lora_weights=init,
    )
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
        cls = SELECTORS.get(condition, ComparingSelector)
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
        "max_redundancy": [d.get("max_redundancy") for d in decisions],
        "importance_kept": [d.get("importance_kept") for d in decisions],
        "importance_knapsack": [d.get("importance_knapsack") for d in decisions],
        "same_as_knapsack": [d.get("same_as_knapsack") for d in decisions],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--budget", type=float, default=0.25)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--conditions", default="all,qubo,qubo_w0,knapsack,random")
    p.add_argument("--rank", type=int, default=8, help="LoRA rank")
    p.add_argument("--init", choices=["default", "pissa"], default="default", help="LoRA init")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/qslm-bench-module-selection"))
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    import torch
    import transformers
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    info = {**machine_info(), "torch": torch.__version__, "transformers": transformers.__version__}
    print(json.dumps(info))
    started = time.perf_counter()
    model_dir = pretrain(args.workdir)
    print(f"base model: {model_dir} ({time.perf_counter() - started:.0f}s)")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data = blocks(tokenizer, BASE["context_length"])
    print(f"adaptation blocks: {len(data[0])} train, {len(data[1])} held out")
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "workdir")}
    print(f"settings: {settings}; LoRA r={args.rank} ({args.init} init) on {', '.join(TARGETS)}")

    results = []
    for seed in range(args.seeds):
        for cond in args.conditions.split(","):
            r = run(cond, seed, args, model_dir, data, args.workdir)
            results.append(r)
            print(
                f"  seed {seed} {cond:8s} held-out loss {r['held_out_loss']:.4f}  "
                f"params/window {r['params_per_window']:.0f}/{r['lora_params']}  "
                f"train {r['train_s']:.0f}s (selection {r['select_s']:.2f}s)  "
                f"max redundancy {max((x for x in r['max_redundancy'] if x), default=0):.3f}",
                flush=True,
            )
    summary = summarise(results, args.conditions.split(","))
    print(f"total {time.perf_counter() - started:.0f}s")
    if args.json:
        out = {"machine": info, "settings": settings, "runs": results, "summary": summary}
        args.json.write_text(json.dumps(out))
    return 0


def summarise(results: list[dict], conditions: list[str]) -> dict:
    """Print and return each condition's mean loss, its paired differences to random and
    knapsack, and for the QUBO runs how often redundancy changed a decision."""
    by = {c: [r for r in results if r["condition"] == c] for c in conditions}
    refs = [c for c in ("random", "knapsack") if c in by]
    out: dict = {}
    print("\ncondition  held-out loss (mean +- std)  " + "  ".join(f"minus {c}" for c in refs))
    for cond, rs in by.items():
        losses = [r["held_out_loss"] for r in rs]
        out[cond] = {"mean": statistics.mean(losses), "std": _std(losses)}
        line = f"{cond:9s}  {out[cond]['mean']:.4f} +- {out[cond]['std']:.4f}"
        for ref in refs:
            if ref != cond:
                d = paired(losses, [r["held_out_loss"] for r in by[ref]])
                out[cond][f"minus_{ref}"] = d
                line += f"   {ref}: {describe(d)}"
        print(line)
    for cond in ("qubo", "qubo_w0"):
        kept = [
            (k, b)
            for r in by.get(cond, [])
            for k, b in zip(r["importance_kept"], r["importance_knapsack"], strict=True)
        ]
        if kept:
            ratio = [k / b for k, b in kept if b]
            print(
                f"{cond}: importance kept / knapsack optimum per window: mean "
                f"{statistics.mean(ratio):.4f}, min {min(ratio):.4f}, "
                f"{sum(k < b - 1e-9 for k, b in kept)}/{len(kept)} windows below it"
            )
            out[cond]["importance_ratio"] = ratio
            same = [x for r in by[cond] for x in r["same_as_knapsack"]]
            print(f"{cond}: the same choice as the knapsack in {sum(same)}/{len(same)} windows")
            out[cond]["same_as_knapsack"] = sum(same)
    if "qubo" in by and "qubo_w0" in by:
        pairs = [
            (a, b)
            for r, w in zip(by["qubo"], by["qubo_w0"], strict=True)
            for a, b in zip(r["chosen"], w["chosen"], strict=True)
        ]
        changed = sum(sorted(a) != sorted(b) for a, b in pairs)
        red = [x for r in by["qubo"] for x in r["max_redundancy"] if x is not None]
        print(
            f"redundancy changed the choice in {changed}/{len(pairs)} windows (qubo vs qubo_w0); "
            f"max pair redundancy per window: median {statistics.median(red):.3f}, "
            f"max {max(red):.3f}"
        )
        out["redundancy"] = {"changed": changed, "windows": len(pairs), "max_redundancy": red}
    return out


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


if __name__ == "__main__":
    sys.exit(main())
