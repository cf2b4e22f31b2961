"""How often QAOA (``qiskit.qaoa`` on the exact statevector) finds the optimum of small
bqp-like QUBOs, against qslm's ``exact`` and ``anneal`` on the same problems, and how long
each takes.

Problems: Beasley-style (OR-Library bqp) maximisation, integer weights uniform in
[-100, 100], pair density 0.5 (bqp's 0.1 leaves almost nothing to solve at 6-12 variables).
For QAOA it reports: how often the best sampled bitstring is optimal, the mean probability
the tuned circuit gives the optimum (P(opt)), and, beside it, the chance that the same number
of *uniformly random* bitstrings contains the optimum: at these sizes 1024 shots cover much
of the 2^n space, so "found" alone flatters QAOA, and P(opt) against 2^-n is the fair number.

    python qslm-backend-qiskit/benchmarks/qaoa.py [--sizes 6,8,10,12] [--reps 1,2,3]
        [--instances 5] [--shots 1024] [--maxiter 100] [--backend statevector]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from importlib.metadata import version

import numpy as np

from qslm.api import Qubo
from qslm.plugins import get_registry


def bqp_like(n: int, seed: int, density: float = 0.5) -> Qubo:
    rng = np.random.default_rng(seed)
    quad = rng.integers(-100, 101, size=(n, n)) * (rng.random((n, n)) < density)
    return Qubo(rng.integers(-100, 101, size=n).astype(float), np.triu(quad, 1), sense="max")


def solver(name: str, **options):
    cls = get_registry().get("qubo_solver", name).load()
    return cls(cls.Options.model_validate(options))


def duration(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.3g} ms"


def timed(s, q, seed):
    started = time.perf_counter()
    result = s.solve(q, seed=seed)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="6,8,10,12")
    parser.add_argument("--reps", default="1,2,3")
    parser.add_argument("--instances", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1024)
    parser.add_argument("--maxiter", type=int, default=100)
    parser.add_argument("--backend", default="statevector", help="qiskit.qaoa's backend option")
    args = parser.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    reps_list = [int(v) for v in args.reps.split(",")]

    rows = []
    for n in sizes:
        problems = [bqp_like(n, seed=1000 * n + i) for i in range(args.instances)]
        optima, exact_t = [], []
        for q in problems:
            r, t = timed(solver("exact"), q, 0)
            optima.append(r.best_energy)
            exact_t.append(t)
        rows.append((n, "exact", "", args.instances, 1.0, None, None, statistics.median(exact_t)))
        found, anneal_t = 0, []
        for i, q in enumerate(problems):
            r, t = timed(solver("anneal"), q, i)
            found += np.isclose(r.best_energy, optima[i])
            anneal_t.append(t)
        rows.append(
            (
                n,
                "anneal",
                "defaults",
                args.instances,
                found / args.instances,
                None,
                None,
                statistics.median(anneal_t),
            )
        )
        for reps in reps_list:
            qaoa = solver(
                "qiskit.qaoa",
                backend=args.backend,
                reps=reps,
                shots=args.shots,
                maxiter=args.maxiter,
                top=1000,
            )
            found, p_opt, times = 0, [], []
            for i, q in enumerate(problems):
                r, t = timed(qaoa, q, i)
                hit = bool(np.isclose(r.best_energy, optima[i]))
                found += hit
                # Every optimal bitstring counts (degenerate optima are common).
                optimal = sum(
                    d["count"] for d in r.info["distribution"] if np.isclose(d["energy"], optima[i])
                )
                p_opt.append(optimal / args.shots)
                times.append(t)
            uniform = 1 - (1 - 2.0**-n) ** args.shots
            rows.append(
                (
                    n,
                    "qiskit.qaoa",
                    f"reps={reps}",
                    args.instances,
                    found / args.instances,
                    statistics.mean(p_opt),
                    uniform,
                    statistics.median(times),
                )
            )
            print(f"  n={n} reps={reps} done", flush=True)

    print()
    print(
        "| n | solver | settings | instances | found optimum | mean P(opt) per shot | "
        "random 2^-n per shot | same shots uniform: found | median wall |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n, name, settings, count, rate, p_opt, uniform, wall in rows:
        p = "" if p_opt is None else f"{p_opt:.3f}"
        rnd = "" if uniform is None else f"{2.0**-n:.4f}"
        uni = "" if uniform is None else f"{uniform:.0%}"
        print(
            f"| {n} | `{name}` | {settings} | {count} | {rate:.0%} | {p} | {rnd} | {uni} | "
            f"{duration(wall)} |"
        )
    print()
    print(
        f"machine: {platform.machine()} {platform.system()} {platform.release()}, "
        f"python {platform.python_version()}, qiskit {version('qiskit')}, "
        f"qiskit-aer {version('qiskit-aer')}, scipy {version('scipy')}, numpy {version('numpy')},"
        f" qslm {version('qslm-core')}; QAOA: {args.backend}, COBYLA maxiter {args.maxiter}, "
        f"{args.shots} shots, ramp start"
    )


if __name__ == "__main__":
    main()
