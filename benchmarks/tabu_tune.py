"""Tune the built-in tabu on generated max-cut graphs (G-set style) and on bqp50/bqp100.

The graphs are made here (seeded), never read from the G-set: random graphs with n nodes and
an edge density as G1-G10 (800 nodes, 19176 edges = 6%), unit weights ("unit", as G1-G5) or
+-1 weights ("pm1", as G6-G10), and toroidal grids ("torus"). Configurations are compared by
the cut they reach at the same iteration budget (deterministic, so insensitive to the load)
over several seeds; there is no known optimum, so the reference is the best cut found by any
configuration (and, with --sa-reads, dwave-samplers' simulated annealing).

Usage: python benchmarks/tabu_tune.py [--graphs unit:0,pm1:0,torus:0,bqp:0] [--n 800]
       [--iterations 2e6] [--seeds 3] [--configs "tenure=n/50;tenure=n/20,stall=n*3"]
       [--targets CUT,CUT] [--sa-reads 0] [--bqp]
Configs are ``;``-separated, each ``key=value,key=value`` of TabuSolver options (an empty one:
the defaults); values may be written in n (``tenure=n/20``, ``stall=n*3``), restart_flips as
``0.05:0.25``. ``bqp:K`` is a generated Beasley-style instance (10% density), not a graph.
With --targets (one per instance) the score is the moves to reach the cut, not the cut;
with --bqp, the moves to the best-known values of bqp50_1-10 and bqp100_1-10.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from qslm.qubo.maxcut import Graph, cut_value, maxcut_qubo
from qslm.qubo.tabu import TabuSolver

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"


def random_graph(n: int, m: int, weights: str, seed: int) -> Graph:
    """m distinct edges drawn uniformly (as rudy's random graphs), weights 1 or +-1."""
    rng = np.random.default_rng(seed)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < m:
        i, j = rng.integers(0, n, size=2)
        if i != j:
            pairs.add((int(min(i, j)), int(max(i, j))))
    edges = np.array(sorted(pairs), dtype=np.int64)
    w = np.ones(m) if weights == "unit" else rng.choice([-1.0, 1.0], size=m)
    return Graph(n, edges[:, 0], edges[:, 1], w)


def torus(side: int, seed: int) -> Graph:
    """A side x side toroidal grid with +-1 weights (as G11-G13)."""
    rng = np.random.default_rng(seed)
    idx = np.arange(side * side).reshape(side, side)
    rows = np.concatenate([idx.ravel(), idx.ravel()])
    cols = np.concatenate([np.roll(idx, 1, 0).ravel(), np.roll(idx, 1, 1).ravel()])
    return Graph(side * side, rows, cols, rng.choice([-1.0, 1.0], size=rows.size))


def beasley(n: int, density: float, seed: int):
    """A Beasley-style bqp instance (sense max): integer weights uniform in [-100, 100] on
    the diagonal and on a ``density`` share of the pairs (each pair written twice, as qbsolv's
    files are read)."""
    from qslm.qubo.model import Qubo

    rng = np.random.default_rng(seed)
    rows, cols = np.triu_indices(n, 1)
    keep = rng.random(rows.size) < density
    rows, cols = rows[keep], cols[keep]
    linear = rng.integers(-100, 101, size=n).astype(float)
    pairs = 2.0 * rng.integers(-100, 101, size=rows.size)
    return Qubo.from_coo(n, linear, rows, cols, pairs, sense="max")


def parse_config(text: str, n: int) -> dict:
    opts: dict = {}
    for part in filter(None, text.split(",")):
        key, value = part.split("=")
        if value == "n" or value.startswith(("n/", "n*")):
            scale = float(value[2:]) if len(value) > 1 else 1.0
            opts[key] = max(1, round(n / scale if value[1:2] == "/" else n * scale))
        elif key == "restart_flips":
            opts[key] = [float(v) for v in value.split(":")]
        else:
            opts[key] = int(float(value))
    return opts


def run(qubo, options: dict, iterations: int, seed: int, target=None) -> tuple[float, float]:
    """The best cut and, with a target, the moves (of the longest chain) to reach it: inf
    when not reached within ``iterations``."""
    opts = {"num_chains": 2, "threads": 2, "num_iterations": iterations, "patience": iterations}
    opts.update(options)
    if target is not None:
        opts["target"] = target
    result = TabuSolver(TabuSolver.Options(engine="numba", **opts)).solve(qubo, seed=seed)
    if target is None:
        return result.best_energy, result.wall_s
    hit = result.best_energy >= target - 1e-6
    return result.best_energy, max(result.info["iterations"]) if hit else np.inf


def sa_reference(qubo, reads: int, sweeps: int) -> float:
    from dwave.samplers import SimulatedAnnealingSampler

    bqm = qubo.as_min().to_bqm()
    out = SimulatedAnnealingSampler().sample(bqm, num_reads=reads, num_sweeps=sweeps, seed=0)
    return -out.first.energy


def instances(spec: str, n: int, density: float) -> list[tuple[str, object]]:
    out = []
    m = round(density * n * (n - 1) / 2)
    for item in spec.split(","):
        kind, seed = item.split(":")
        if kind == "bqp":
            out.append((f"bqp{n}-{seed}", beasley(n, 0.1, int(seed))))
            continue
        if kind == "torus":
            g = torus(round(n**0.5), int(seed))
        else:
            g = random_graph(n, m, kind, int(seed))
        out.append((f"{kind}{seed}", maxcut_qubo(g)))
        assert cut_value(g, np.zeros(g.n)) == 0
    return out


def bqp_instances(shared: Path) -> list[tuple[str, object, float]]:
    from qslm.bench.best_known import load_best_known
    from qslm.qubo.io import read_qubo

    folder = shared / "qubo"
    paths = [folder / f"bqp{s}_{k}.qubo" for s in (50, 100) for k in range(1, 11)]
    best = load_best_known(paths).values
    return [(p.stem, read_qubo(p, sense="max"), best[p.stem]) for p in paths]


def tune_graphs(args, configs: list[str]) -> None:
    targets = [float(t) for t in args.targets.split(",")] if args.targets else None
    for k, (name, qubo) in enumerate(instances(args.graphs, args.n, args.density)):
        if targets:
            ttt(args, configs, name, qubo, targets[k])
            continue
        n = qubo.num_variables
        ref = sa_reference(qubo, args.sa_reads, 10_000) if args.sa_reads else None
        print(f"{name}: n={n} edges={qubo.num_interactions} SA ref={ref}", flush=True)
        for text in configs:
            cuts, walls = zip(
                *(run(qubo, parse_config(text, n), args.iterations, s) for s in range(args.seeds)),
                strict=True,
            )
            print(
                f"  {text or 'default':<45} cuts {[int(c) for c in cuts]} "
                f"mean {statistics.mean(cuts):.1f} max {max(cuts):.0f} ({sum(walls):.1f} s)",
                flush=True,
            )


def ttt(args, configs: list[str], name: str, qubo, target: float) -> None:
    print(f"{name}: moves to {target:g}", flush=True)
    for text in configs:
        opts = parse_config(text, qubo.num_variables)
        its = [run(qubo, opts, args.iterations, s, target)[1] for s in range(args.seeds)]
        print(
            f"  {text or 'default':<45} moves {[float(i) for i in its]} median "
            f"{statistics.median(its):.3g} misses {sum(np.isinf(its))}/{len(its)}",
            flush=True,
        )


def tune_bqp(args, configs: list[str]) -> None:
    """Iterations (per chain, the fewest of the two chains) to reach the best-known value."""
    problems = bqp_instances(args.instances)
    for text in configs:
        its = []
        for _name, qubo, best in problems:
            opts = parse_config(text, qubo.num_variables)
            for s in range(args.seeds):
                o = {"num_chains": 2, "threads": 2, "num_iterations": 10**6, "patience": 10**6}
                o.update(opts)
                o["target"] = best
                r = TabuSolver(TabuSolver.Options(engine="numba", **o)).solve(qubo, seed=s)
                hit = r.best_energy >= best - 1e-6
                its.append(max(r.info["iterations"]) if hit else np.inf)
        misses = sum(np.isinf(its))
        print(
            f"  {text or 'default':<45} bqp50+100: median its {statistics.median(its):.0f} "
            f"mean {np.mean([i for i in its if np.isfinite(i)]):.0f} p90 "
            f"{np.percentile(its, 90):.0f} max {max(its):.0f} misses {misses}/{len(its)}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", default="unit:0,pm1:0")
    parser.add_argument("--n", type=int, default=800)
    parser.add_argument("--density", type=float, default=19176 / (800 * 799 / 2))
    parser.add_argument("--iterations", type=float, default=2e6)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--configs", default="")
    parser.add_argument("--targets", default="", help="cuts: measure the moves to reach them")
    parser.add_argument("--sa-reads", type=int, default=0)
    parser.add_argument("--instances", type=Path, default=SHARED, help="the benchmarks folder")
    parser.add_argument("--bqp", action="store_true", help="bqp50/bqp100 instead of graphs")
    args = parser.parse_args()
    args.iterations = int(args.iterations)
    configs = args.configs.split(";")
    if args.bqp:
        tune_bqp(args, configs)
    else:
        tune_graphs(args, configs)


if __name__ == "__main__":
    main()
