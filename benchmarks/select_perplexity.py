"""Held-out perplexity of the quickstart trained on the ``[select]`` QUBO subset, the greedy
(MMR) subset, random subsets of the same size, and all training records, paired over seeds.

Everything runs through the pipeline's own code: ``examples/quickstart/pipeline.toml`` is
loaded with ``--set`` overrides, its data source loads the records once (validation is the
same 10% in every arm; ``[select]`` never touches it), and for each seed s:

- ``qubo``: ``run_select_stage`` as ``qslm run`` runs it (its solver chain, seed s);
- ``greedy``: the stage's own ``SubsetProblem.greedy()`` (MMR: best marginal objective gain,
  k times) on the same QUBO (deterministic: one subset for every seed);
- ``random``: k records drawn uniformly (seed s);
- ``all``: every training record (more records, so more steps at the same epochs).

Each arm then trains the pipeline's trainer with seed s (same initialisation in every arm)
and runs its ``[evaluate.perplexity]``. Each arm learns its own tokenizer from its records,
so per-token perplexities are not quite comparable across arms; bits per byte of the
validation text (total NLL / ln 2 / UTF-8 bytes) is, and the differences are taken on it.

Usage:  python benchmarks/select_perplexity.py [--seeds 3] [--set train.options.epochs=12]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from paired import describe, paired  # benchmarks/paired.py, beside this file

from qslm.bench.solvers import machine_info
from qslm.components import Dataset
from qslm.config import load_pipeline
from qslm.context import RunContext
from qslm.pipeline import library_versions
from qslm.plugins import get_registry
from qslm.qubo.subset import subset_problem
from qslm.stages.select import parse_select_options, run_select_stage
from qslm.text.similarity import text_vectors
from qslm.train.packing import record_texts

PIPELINE = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "pipeline.toml"
ARMS = ("qubo", "greedy", "random", "all")
# Fewer epochs than the quickstart's 12 so that 4 arms x 3 seeds fit in about 15 minutes on
# two busy cores; --set train.options.epochs=12 trains as the quickstart does.
DEFAULT_SET = ["train.options.epochs=2"]


def greedy_subset(config, data: Dataset, base: Path) -> tuple[np.ndarray, float]:
    """The greedy (MMR) mask of the stage's own QUBO, built as ``run_select_stage`` builds it
    (same options, similarity and lengths), and its objective."""
    opts = parse_select_options(config.select.options, file=config.path.name)
    texts = [str(r.get("text", "")) for r in data.train]
    query = " ".join([opts.query, *opts.keywords]).strip() or None
    tv = text_vectors(
        texts, opts.similarity, model=opts.embedding_model, base_dir=base, query=query
    )
    sp = subset_problem(
        tv.vectors,
        config.select.size,
        query=tv.query,
        lengths=np.array([len(t.split()) for t in texts]),
        redundancy_weight=opts.redundancy_weight,
        neighbours=opts.neighbours,
        min_words=opts.min_words,
    )
    mask = sp.greedy()
    return mask, float(sp.score(mask)[0])


def subset(data: Dataset, indices, name: str) -> Dataset:
    chosen = sorted(int(i) for i in indices)
    return Dataset([data.train[i] for i in chosen], data.validation, f"{data.sha256}:{name}")


def train_and_evaluate(config, registry, data: Dataset, seed: int, build: Path) -> dict:
    """The pipeline's trainer and perplexity evaluator on ``data`` with ``seed``."""
    shutil.rmtree(build, ignore_errors=True)  # a fresh build: no checkpoint of an earlier run
    build.mkdir(parents=True)
    ctx = RunContext(config, registry, build, seed, progress=lambda line: None)
    started = time.perf_counter()
    artifact = config.train.create().train(ctx, data, config.attention.create())
    train_s = time.perf_counter() - started
    [ref] = [r for r in config.evaluators if r.spec.name == "perplexity"]
    metrics = ref.create().evaluate(ctx, artifact, data)
    return {
        **{k: metrics[k] for k in ("perplexity", "perplexity_untrained", "eval_tokens")},
        "train_steps": artifact.metrics.get("train_steps"),
        "train_s": round(train_s, 1),
    }


def run_seed(config, registry, data, greedy_mask, seed, workdir, valid_bytes) -> list[dict]:
    """The four arms for one seed: select (qubo, random), train, evaluate."""
    k, n = config.select.size, len(data.train)
    ctx = RunContext(config, registry, workdir / f"s{seed}-select", seed, lambda line: None)
    qubo = run_select_stage(ctx, config.select, data)
    record = ctx.manifest["select"]
    picked = {
        "qubo": qubo,
        "greedy": subset(data, np.flatnonzero(greedy_mask), "greedy"),
        "random": subset(data, np.random.default_rng(seed).choice(n, k, replace=False), "r"),
        "all": data,
    }
    rows = []
    for arm in ARMS:
        r = train_and_evaluate(config, registry, picked[arm], seed, workdir / f"s{seed}-{arm}")
        nll = math.log(r["perplexity"]) * r["eval_tokens"]
        r.update(arm=arm, seed=seed, records=len(picked[arm].train))
        r["bits_per_byte"] = nll / math.log(2) / valid_bytes
        if arm == "qubo":
            r.update(solver=record.get("solver"), objective=record.get("objective"))
            r.update(comparison=record.get("comparison"), status=record.get("status"))
        rows.append(r)
        print(
            f"  seed {seed} {arm:6s} {r['records']:4d} records  perplexity "
            f"{r['perplexity']:7.3f}  bits/byte {r['bits_per_byte']:.4f}  "
            f"{r['train_steps']} steps {r['train_s']:.0f}s"
            + (f"  ({r['solver']}, objective {r['objective']:.4g})" if arm == "qubo" else ""),
            flush=True,
        )
    return rows


def summarise(rows: list[dict]) -> dict:
    """Print and return each arm's means and its paired bits-per-byte differences."""
    out: dict = {}
    print("\narm      records  perplexity (mean +- std)  bits/byte   minus random / minus all")
    for arm in ARMS:
        rs = [r for r in rows if r["arm"] == arm]
        bpb = [r["bits_per_byte"] for r in rs]
        ppl = [r["perplexity"] for r in rs]
        entry = {
            "records": rs[0]["records"],
            "perplexity": [statistics.mean(ppl), _std(ppl)],
            "bits_per_byte": [statistics.mean(bpb), _std(bpb)],
        }
        cells = []
        for ref in ("random", "all", "greedy"):
            if ref != arm:
                other = [r["bits_per_byte"] for r in rows if r["arm"] == ref]
                entry[f"minus_{ref}"] = paired(bpb, other)
                if ref != "greedy":
                    cells.append(describe(entry[f"minus_{ref}"]))
        out[arm] = entry
        print(
            f"{arm:7s} {entry['records']:7d}  {entry['perplexity'][0]:7.3f} +- "
            f"{entry['perplexity'][1]:.3f}     {entry['bits_per_byte'][0]:.4f}   "
            + " / ".join(cells)
        )
    print(f"qubo minus greedy (bits/byte): {describe(out['qubo']['minus_greedy'])}")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--set", action="append", default=None, help="pipeline override K=V")
    p.add_argument("--pipeline", type=Path, default=PIPELINE)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/qslm-bench-select-perplexity"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    overrides = DEFAULT_SET + (args.set or [])

    import torch

    registry = get_registry()
    config = load_pipeline(args.pipeline, registry, overrides=overrides)
    info = {**machine_info(), **library_versions(), "torch_threads": torch.get_num_threads()}
    print(json.dumps(info))
    print(f"pipeline {args.pipeline.name}, --set {' '.join(overrides)}, seeds 0..{args.seeds - 1}")
    started = time.perf_counter()
    ctx = RunContext(config, registry, args.workdir / "data", config.seed, lambda line: None)
    data = config.data.create().load(ctx)
    valid_bytes = sum(len(t.encode()) for t in record_texts(data.validation, split="validation"))
    greedy_mask, greedy_obj = greedy_subset(config, data, config.base_dir)
    print(
        f"{len(data.train)} training records, {len(data.validation)} validation "
        f"({valid_bytes} bytes); select size {config.select.size}; greedy objective "
        f"{greedy_obj:.4g}"
    )
    rows = []
    for seed in range(args.seeds):
        rows += run_seed(config, registry, data, greedy_mask, seed, args.workdir, valid_bytes)
    summary = summarise(rows)
    print(f"total {time.perf_counter() - started:.0f}s")
    if args.json:
        out = {"machine": info, "overrides": overrides, "rows": rows, "summary": summary}
        args.json.write_text(json.dumps(out, default=str))
    return 0


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


if __name__ == "__main__":
    sys.exit(main())
