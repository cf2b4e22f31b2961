"""Every installed QUBO solver on the same instances, with the same budget and accounting.

Families (instances read from the shared benchmark folder, never copied):
  bqp2500   Beasley's bqp2500 (best-known values, none proven), budget --budget-large s a call
  gset      G-set max-cut G1.. (800 nodes) through qslm.qubo.maxcut, budget --budget-gset s
  bqp250    Beasley's bqp250 (proven optima), annealers compared per read
  exact     bqp50/bqp100: the exact solver's proof time, and every heuristic's gap to it

Accounting, the same for every solver: a call gets the budget as its time limit; it succeeds
when its best reaches the target (the best-known value); t is the median wall time of the
calls and p the success rate, and TTT(99%) = t ln(0.01) / ln(1 - p). Solvers that can stop at
a target (qslm's tabu: ``target``; dwave-samplers' TabuSampler: ``energy_threshold``) get it,
so their t is the time to target. For the annealers (qslm's anneal, dwave.sa, openjij.sa)
on bqp250 the accounting is per read: t = call time / reads, p = share of reads that reach
the target. "gap" is the median over calls of (target - best) / target at the budget.

Usage: python benchmarks/qubo_peers.py [--families bqp2500,gset,bqp250,exact] [--count 5]
       [--repeats 1] [--budget-large 30] [--budget-gset 10] [--sa-reads N] [--gset 6,7]
       [--instances DIR] [--json FILE] [--solvers tabu,anneal] [--tabu-options '{"tenure": 16}']
Needs qslm-core[fast]; uses qslm-backend-dwave, qslm-solver-openjij and qslm-solver-exact
when installed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
from importlib import metadata
from pathlib import Path

from qslm.bench.best_known import load_best_known
from qslm.bench.solvers import machine_info, reached, tts
from qslm.plugins import get_registry
from qslm.qubo.io import read_qubo
from qslm.qubo.maxcut import maxcut_qubo, read_gset
from qslm.testing import random_qubo

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
GSET_BEST = {1: 11624, 2: 11620, 3: 11622, 4: 11646, 5: 11631}
GSET_BEST.update({6: 2178, 7: 2006, 8: 2005, 9: 2054, 10: 2000})
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

# Per family: solver name -> options. A heuristic with a time budget runs until the budget or
# the target; the annealers run a fixed number of reads (their natural unit).
HEURISTICS = {
    "tabu": {"num_chains": CORES, "num_iterations": 10**12, "patience": 10**12},
    "anneal": {"num_reads": None},  # --sa-reads: the default, 1000, outlasts the budget
    "dwave.tabu": {"num_reads": 1, "timeout": None},  # timeout: the budget, in ms
    "dwave.sa": {"num_reads": None},
    "openjij.sa": {"num_reads": None},
}
ANNEALERS = {
    "anneal": {"num_reads": 32, "num_sweeps": 1000},
    "dwave.sa": {"num_reads": 32, "num_sweeps": 1000},
    "openjij.sa": {"num_reads": 32, "num_sweeps": 1000},
}


_WARM: set[str] = set()
SA_READS = [1000]


def make(name: str, options: dict, budget: float, target: float | None, sense: str):
    """The solver ``name`` with ``options``, told the target where it can stop at one;
    None when the solver is not installed."""
    registry = get_registry()
    try:
        cls = registry.get("qubo_solver", name).load()
    except Exception:
        return None
    if name not in _WARM:  # imports and compiled kernels load once, outside every timing
        cls(cls.Options()).solve(random_qubo(20, seed=0), seed=0)
        _WARM.add(name)
    opts = dict(options)
    fields = cls.Options.model_fields
    if opts.get("num_reads", 0) is None:
        opts["num_reads"] = SA_READS[0]
    if "timeout" in opts and opts["timeout"] is None:
        opts["timeout"] = int(budget * 1000)
    if target is not None and "target" in fields:
        opts["target"] = target
    if target is not None and "energy_threshold" in fields:
        opts["energy_threshold"] = target if sense == "min" else -target
    return cls(cls.Options(**opts))


def run_calls(solver, qubo, repeats: int, budget: float | None) -> list:
    return [solver.solve(qubo, seed=k, time_limit=budget) for k in range(repeats)]


def row_for(family, instance, name, results, target, sense, per_read=False, optimum=None):
    bests = [r.best_energy for r in results]
    walls = [r.wall_s for r in results]
    if per_read:
        reads = sum(r.num_samples for r in results)
        hits = sum(sum(reached(e, target, sense) for e in r.energies) for r in results)
        reads_per_call = [r.info.get("num_reads", r.num_samples) for r in results]
        t = statistics.median(w / max(1, k) for w, k in zip(walls, reads_per_call, strict=True))
        p = hits / max(1, reads)
    else:
        t = statistics.median(walls)
        p = sum(reached(b, target, sense) for b in bests) / len(results)
    sign = 1 if sense == "max" else -1
    gaps = [max(0.0, sign * (target - b)) / abs(target) for b in bests]
    row = {
        "family": family,
        "instance": instance,
        "solver": name,
        "target": target,
        "best": max(bests) if sense == "max" else min(bests),
        "success": p,
        "t_s": t,
        "ttt_s": tts(t, p),
        "gap": statistics.median(gaps),
        "calls": len(results),
        "per_read": per_read,
    }
    if optimum is not None:
        row["gap_to_optimum"] = max(0.0, sign * (optimum - row["best"])) / abs(optimum)
    print(
        f"  {instance:>10} {name:<12} best {row['best']:>10g} p={p:.2f} t={t:.3g}s "
        f"TTT={row['ttt_s']:.3g}s gap={100 * row['gap']:.3f}%",
        flush=True,
    )
    return row


def bqp(folder: Path, prefix: str, count: int) -> list[tuple[str, object, float]]:
    paths = sorted(
        folder.glob(f"{prefix}_*.qubo*"), key=lambda p: int(p.name.split("_")[1].split(".")[0])
    )
    paths = paths[:count]
    best = load_best_known(paths).values
    return [
        (p.name.split(".")[0], read_qubo(p, sense="max"), best[p.name.split(".")[0]]) for p in paths
    ]


def family_heuristics(family, problems, budget, repeats) -> list[dict]:
    rows = []
    for instance, qubo, target in problems:
        for name, options in HEURISTICS.items():
            solver = make(name, options, budget, target, "max")
            if solver is not None:
                results = run_calls(solver, qubo, repeats, budget)
                rows.append(row_for(family, instance, name, results, target, "max"))
    return rows


def family_annealers(problems, repeats) -> list[dict]:
    rows = []
    for instance, qubo, target in problems:
        for name, options in ANNEALERS.items():
            solver = make(name, options, 600, None, "max")
            if solver is not None:
                results = run_calls(solver, qubo, repeats, None)
                rows.append(row_for("bqp250", instance, name, results, target, "max", True))
    return rows


def family_exact(problems, repeats) -> list[dict]:
    rows = []
    for instance, qubo, target in problems:
        exact = make("exact.highs", {}, 60, None, "max")
        if exact is None:
            print("qslm-solver-exact is not installed: no proofs")
            return rows
        proof = exact.solve(qubo, time_limit=60)
        optimum = proof.best_energy if proof.info.get("optimal") else None
        row = row_for("exact", instance, "exact.highs", [proof], target, "max", optimum=optimum)
        row["proved"] = bool(proof.info.get("optimal"))
        rows.append(row)
        for name in [k for k in ("tabu", "dwave.tabu") if k in HEURISTICS]:
            solver = make(name, HEURISTICS[name], 0.1, None, "max")
            if solver is not None:
                results = run_calls(solver, qubo, repeats, 0.1)
                rows.append(
                    row_for("exact", instance, name, results, target, "max", optimum=optimum)
                )
    return rows


def summary(rows: list[dict]) -> str:
    lines = [
        "| family | solver | instances | reached (calls) | median TTT(99%) "
        "| median gap at budget | max gap to proven optimum |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = dict.fromkeys((r["family"], r["solver"]) for r in rows)
    for family, solver in keys:
        mine = [r for r in rows if r["family"] == family and r["solver"] == solver]
        ttt = statistics.median(r["ttt_s"] for r in mine)
        proven = [r["gap_to_optimum"] for r in mine if "gap_to_optimum" in r]
        unit = " per read" if mine[0]["per_read"] else ""
        lines.append(
            f"| {family} | {solver} | {len(mine)} | "
            f"{sum(r['success'] > 0 for r in mine)}/{len(mine)} | "
            f"{'inf' if math.isinf(ttt) else f'{ttt:.3g} s'}{unit} | "
            f"{100 * statistics.median(r['gap'] for r in mine):.3f}% | "
            f"{f'{100 * max(proven):.3f}%' if proven else '-'} |"
        )
    return "\n".join(lines)


def versions() -> dict:
    out = machine_info()
    for dist in ("numba", "dwave-samplers", "openjij", "highspy", "dimod"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    out["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out["load_average_at_start"] = os.getloadavg()
    return out


def select(solvers: str | None, tabu_options: dict) -> None:
    """Keep only the named solvers (of every family), and add ``tabu_options`` to tabu's."""
    if solvers:
        keep = set(solvers.split(","))
        for table in (HEURISTICS, ANNEALERS):
            for name in set(table) - keep:
                del table[name]
    if "tabu" in HEURISTICS:
        HEURISTICS["tabu"] = {**HEURISTICS["tabu"], **tabu_options}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=Path, default=SHARED, help="the benchmarks folder")
    parser.add_argument("--families", default="bqp2500,gset,bqp250,exact")
    parser.add_argument("--count", type=int, default=10, help="instances per family")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--budget-large", type=float, default=30.0)
    parser.add_argument("--budget-gset", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--sa-reads",
        type=int,
        default=1000,
        help="reads of the annealers "
        "in the bqp2500 and gset families (1000: enough that the budget ends the call)",
    )
    parser.add_argument("--gset", default=None, help="G-set graphs, e.g. 6,7,8 (default 1..count)")
    parser.add_argument(
        "--solvers", default=None, help="only these solvers, e.g. tabu,dwave.tabu (default all)"
    )
    parser.add_argument(
        "--tabu-options",
        type=json.loads,
        default={},
        help="JSON object of options added to tabu's, e.g. '{\"tenure\": 16}'",
    )
    args = parser.parse_args()
    select(args.solvers, args.tabu_options)
    qubo_dir, gset_dir = args.instances / "qubo", args.instances / "maxcut"
    if not qubo_dir.is_dir():
        print(f"{qubo_dir}: no such folder (use --instances)", file=sys.stderr)
        return 2
    info = versions()
    print("machine:", json.dumps(info))
    print(f"settings: {vars(args)}; heuristics {HEURISTICS}; annealers {ANNEALERS}")
    families = args.families.split(",")
    SA_READS[0] = args.sa_reads
    gset_numbers = (
        [int(k) for k in args.gset.split(",")] if args.gset else range(1, min(10, args.count) + 1)
    )
    rows: list[dict] = []
    if "bqp2500" in families:
        print("\nbqp2500")
        rows += family_heuristics(
            "bqp2500", bqp(qubo_dir, "bqp2500", args.count), args.budget_large, args.repeats
        )
    if "gset" in families:
        print("\nG-set")
        problems = [
            (f"G{k}", maxcut_qubo(read_gset(gset_dir / f"G{k}.txt")), GSET_BEST[k])
            for k in gset_numbers
        ]
        rows += family_heuristics("gset", problems, args.budget_gset, args.repeats)
    if "bqp250" in families:
        print("\nbqp250 (annealers, per read)")
        rows += family_annealers(bqp(qubo_dir, "bqp250", args.count), max(args.repeats, 3))
    if "exact" in families:
        print("\nbqp50, bqp100: proofs")
        problems = bqp(qubo_dir, "bqp50", args.count) + bqp(qubo_dir, "bqp100", args.count)
        rows += family_exact(problems, max(args.repeats, 3))
    print("\n" + summary(rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "rows": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
