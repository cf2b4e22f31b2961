"""Speed benchmark of the built-in QUBO solvers against dwave-samplers' SimulatedAnnealingSampler.

Part 1, Beasley's bqp50 and bqp100 instances (maximisation, best-known values from the README
next to them): every solver configuration is called ``--repeats`` times per instance (seeds
0, 1, ...; the calls of all configurations interleaved so that machine noise hits all alike).
Success = the call's best energy reaches the best-known value; TTS = t * ln(0.01) / ln(1 - p)
with t the median wall time of a call and p the success rate. dwave-samplers is timed on
``sampler.sample(bqm, ...)`` with the BQM built beforehand; our solvers' time includes all
their preparation.

Part 2, scaling: Beasley-style generated instances (density 0.1, integer weights in
[-100, 100]) with n = 50 ... 1000: median wall time of a call and the best energy, against
the best energy any configuration found.

Usage:  python benchmarks/qubo_solvers.py [--repeats 20] [--sizes 50,100,250,500,1000]
Needs dimod and dwave-samplers for the reference (pip install dwave-samplers).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

# Every solver single-threaded, like dwave-samplers' SA (set before numpy loads BLAS).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


from qslm.bench.best_known import load_best_known  # noqa: E402
from qslm.bench.solvers import (  # noqa: E402
    machine_info,
    random_qubo,
    reached,
    tts,
)
from qslm.qubo.anneal import AnnealSolver  # noqa: E402
from qslm.qubo.io import read_qubo  # noqa: E402
from qslm.qubo.tabu import TabuSolver  # noqa: E402

DEFAULT_INSTANCES = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "qubo"

# The "tuned" settings minimise the median TTS on bqp100 over a grid (reads x sweeps, and
# chains x iterations x tenure); dwave-samplers' were chosen from the same kind of grid
# (num_reads 1..50 x num_sweeps 20..1000), so both sides get the same tuning effort.
OURS = {
    "anneal": ("anneal", {}),
    "tabu": ("tabu", {}),
    "anneal tuned": ("anneal", {"num_reads": 32, "num_sweeps": 25}),
    "tabu tuned": ("tabu", {"num_chains": 16, "num_iterations": 100, "tenure": 10}),
}
DWAVE = {
    "dwave SA default": {"num_reads": 1, "num_sweeps": 1000},
    "dwave SA tuned": {"num_reads": 30, "num_sweeps": 20},
}
SCALING_DWAVE = {
    "dwave SA default": {"num_reads": 1, "num_sweeps": 1000},
    "dwave SA 32x1000": {"num_reads": 32, "num_sweeps": 1000},
}


def make_ours(kind: str, options: dict):
    cls = AnnealSolver if kind == "anneal" else TabuSolver
    solver = cls(cls.Options(**options))

    def call(qubo, seed):
        r = solver.solve(qubo, seed=seed)
        return r.best_energy, r.wall_s

    return call


def make_dwave(options: dict):
    from dwave.samplers import SimulatedAnnealingSampler

    sampler = SimulatedAnnealingSampler()
    bqms: dict[int, object] = {}

    def call(qubo, seed):
        bqm = bqms.get(id(qubo))
        if bqm is None:
            bqm = bqms[id(qubo)] = qubo.to_bqm()
        t0 = time.perf_counter()
        sampleset = sampler.sample(bqm, seed=seed, **options)
        wall = time.perf_counter() - t0
        energy = float(sampleset.first.energy)  # of the minimisation form
        return (-energy if qubo.sense == "max" else energy), wall

    return call


def solvers(dwave: dict[str, dict]) -> dict:
    out = {name: make_ours(kind, opts) for name, (kind, opts) in OURS.items()}
    try:
        out.update({name: make_dwave(opts) for name, opts in dwave.items()})
    except ImportError:
        print("dwave-samplers is not installed: no reference (pip install dwave-samplers)")
    return out


def versions() -> dict:
    from importlib import metadata

    out = machine_info()
    for dist in ("dimod", "dwave-samplers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    out["threads"] = os.environ.get("OPENBLAS_NUM_THREADS")
    return out


def part1(folder: Path, repeats: int) -> tuple[list[dict], bool]:
    paths = sorted(
        folder.glob("bqp*.qubo"),
        key=lambda p: [int(t) if t.isdigit() else t for t in p.stem.split("_")],
    )
    paths = [p for p in paths if p.stem.split("_")[0] in ("bqp50", "bqp100")]
    best_known = load_best_known(paths).values
    calls = solvers(DWAVE)
    rows = []
    for path in paths:
        qubo = read_qubo(path, sense="max")
        target = best_known[path.stem]
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
        for seed in range(repeats):
            for name, call in calls.items():
                results[name].append(call(qubo, seed))
        for name, runs in results.items():
            p = sum(reached(e, target, "max") for e, _ in runs) / repeats
            t = statistics.median(w for _, w in runs)
            rows.append(
                {
                    "set": path.stem.split("_")[0],
                    "instance": path.stem,
                    "solver": name,
                    "target": target,
                    "best": max(e for e, _ in runs),
                    "success": p,
                    "wall_s": t,
                    "tts_s": tts(t, p),
                }
            )
        print(
            f"  {path.stem}: "
            + ", ".join(
                f"{r['solver']} p={r['success']:.2f}" for r in rows if r["instance"] == path.stem
            ),
            flush=True,
        )
    ok = True
    for name in ("anneal", "tabu"):
        missed = [r["instance"] for r in rows if r["solver"] == name and r["success"] == 0]
        ok &= not missed
        print(
            f"{name} (defaults) reached the best-known value on "
            f"{len(paths) - len(missed)}/{len(paths)} instances"
            + (f"; missed {', '.join(missed)}" if missed else "")
        )
    return rows, ok


def summary1(rows: list[dict]) -> list[dict]:
    out = []
    for name in dict.fromkeys(r["solver"] for r in rows):
        entry = {"solver": name}
        for s in ("bqp50", "bqp100"):
            mine = [r for r in rows if r["solver"] == name and r["set"] == s]
            entry[f"{s}_median_tts_ms"] = 1000 * statistics.median(r["tts_s"] for r in mine)
            entry[f"{s}_max_tts_ms"] = 1000 * max(r["tts_s"] for r in mine)
            entry[f"{s}_median_wall_ms"] = 1000 * statistics.median(r["wall_s"] for r in mine)
            entry[f"{s}_always"] = sum(r["success"] == 1 for r in mine)
            entry[f"{s}_reached"] = sum(r["success"] > 0 for r in mine)
        out.append(entry)
    return out


def part2(sizes: list[int], repeats: int) -> list[dict]:
    calls = solvers(SCALING_DWAVE)
    calls = {k: v for k, v in calls.items() if "tuned" not in k}
    rows = []
    for n in sizes:
        qubo = random_qubo(n, seed=n)
        runs = {name: [call(qubo, seed) for seed in range(repeats)] for name, call in calls.items()}
        best = max(e for rs in runs.values() for e, _ in rs)
        for name, rs in runs.items():
            rows.append(
                {
                    "n": n,
                    "solver": name,
                    "wall_s": statistics.median(w for _, w in rs),
                    "best": max(e for e, _ in rs),
                    "reference": best,
                    "reached": sum(e >= best for e, _ in rs) / len(rs),
                }
            )
        print(
            f"  n={n}: "
            + ", ".join(f"{r['solver']} {1000 * r['wall_s']:.0f} ms" for r in rows if r["n"] == n),
            flush=True,
        )
    return rows


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if math.isfinite(value) else "inf"


def markdown1(summary: list[dict]) -> str:
    refs = {
        s["solver"]: s["bqp100_median_tts_ms"] for s in summary if s["solver"].startswith("dwave")
    }
    lines = [
        "| solver | bqp50 median TTS | bqp100 median TTS | bqp100 max TTS | "
        "bqp100 median call | bqp50 / bqp100 instances reached in every call | "
        + " | ".join(f"bqp100 speed-up vs {r}" for r in refs)
        + " |",
        "|---" * (6 + len(refs)) + "|",
    ]
    for s in summary:
        ours = s["bqp100_median_tts_ms"]
        ratios = [
            f"{ref / ours:.2f}x" if math.isfinite(ours) and math.isfinite(ref) else "-"
            for ref in refs.values()
        ]
        lines.append(
            f"| {s['solver']} | {_ms(s['bqp50_median_tts_ms'])} | {_ms(ours)} | "
            f"{_ms(s['bqp100_max_tts_ms'])} | {_ms(s['bqp100_median_wall_ms'])} | "
            f"{s['bqp50_always']}/10, {s['bqp100_always']}/10 | " + " | ".join(ratios) + " |"
        )
    return "\n".join(lines)


def markdown2(rows: list[dict]) -> str:
    names = list(dict.fromkeys(r["solver"] for r in rows))
    lines = ["| n | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for n in dict.fromkeys(r["n"] for r in rows):
        cells = []
        for name in names:
            r = next(r for r in rows if r["n"] == n and r["solver"] == name)
            gap = (r["reference"] - r["best"]) / abs(r["reference"])
            cells.append(f"{1000 * r['wall_s']:.0f} ms, gap {100 * gap:.2g}%")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=Path, default=DEFAULT_INSTANCES)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--sizes", default="50,100,250,500,1000")
    parser.add_argument("--scaling-repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows here.")
    args = parser.parse_args()
    info = versions()
    print("machine:", json.dumps(info))
    print(
        f"settings: repeats={args.repeats}; ours {json.dumps(OURS)}; "
        f"dwave-samplers {json.dumps(DWAVE)}; scaling {json.dumps(SCALING_DWAVE)}"
    )
    if not args.instances.is_dir():
        print(f"{args.instances}: no such folder (use --instances)", file=sys.stderr)
        return 2
    print("\npart 1: bqp50 and bqp100")
    rows1, ok = part1(args.instances, args.repeats)
    summary = summary1(rows1)
    print("\n" + markdown1(summary))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"\npart 2: scaling, median of {args.scaling_repeats} calls, gap to the best found")
    rows2 = part2(sizes, args.scaling_repeats)
    print("\n" + markdown2(rows2))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": info, "part1": rows1, "summary": summary, "part2": rows2},
                default=float,
                indent=1,
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
