"""Write Beasley-style random QUBO instances (the OR-Library bqp recipe: integer weights
uniform in [-100, 100] on the diagonal and on 10% of the pairs, maximised), seeded, in the
qbsolv ``.qubo`` format that ``qslm solve`` and ``qslm bench solvers`` read.

    python examples/qubo/make_instances.py --n 100 --count 5 --seed 1 --out instances/

The OR-Library's own bqp sets (Beasley 1990/1998) come from
http://people.brunel.ac.uk/~mastjjb/jeb/orlib/bqpinfo.html; this script makes instances of the
same kind, so a clone of the repository has problems to solve without downloading anything.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from qslm.api import write_qubo
from qslm.bench.solvers import random_qubo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50, help="variables per instance")
    parser.add_argument("--count", type=int, default=3, help="instances")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first instance")
    parser.add_argument("--density", type=float, default=0.1, help="share of the pairs")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder to write into")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.count):
        seed = args.seed + i
        qubo = random_qubo(args.n, density=args.density, seed=seed)
        path = args.out / f"beasley{args.n}_s{seed}.qubo"
        write_qubo(qubo, path, comment=f"Beasley-style, n={args.n}, seed={seed}, maximise")
        print(path)


if __name__ == "__main__":
    main()
