"""``qslm solve``. Only click is imported at start-up; numpy and the solvers load inside the
command."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import click

from qslm.errors import ConfigError

if TYPE_CHECKING:
    from qslm.qubo.solver import QuboSolver


def parse_option(item: str, flag: str = "--option") -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as a TOML value (``3``, ``true``, ``[0.1, 5.0]``), else as
    a plain string."""
    from qslm.config import parse_key_value  # pydantic and numpy: not at start-up

    return parse_key_value(item, flag, f"{flag} num_reads=64")


def load_solver(name: str, raw: dict[str, Any], *, key: str, prefix: str) -> QuboSolver:
    """The registered solver ``name`` with validated options (errors name ``key``/``prefix``)."""
    from qslm.components import validate_options
    from qslm.plugins import get_registry
    from qslm.qubo.solver import QuboSolver

    spec = get_registry().get("qubo_solver", name, key=key)
    cls = spec.load()
    if not (isinstance(cls, type) and issubclass(cls, QuboSolver)):
        raise ConfigError(f"{key}: {name!r} ({spec.target}) is not a QuboSolver")
    options = validate_options(cls.Options, raw, file=prefix, prefix="")
    solver = cls(options)
    solver.plan()
    return solver


def _positive(value: float | None, flag: str) -> float | None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{flag}: expected positive seconds, got {value!r}")
    return value


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--solver",
    "solver_name",
    default="anneal",
    show_default=True,
    help="A registered QUBO solver (see `qslm plugins`).",
)
@click.option(
    "--maximize",
    is_flag=True,
    help="Maximise the objective (qbsolv's -m; Beasley's bqp files are maxima).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Seed for a reproducible run (default: fresh, printed).",
)
@click.option(
    "--timeout", type=float, default=None, help="Stop after S seconds and report the best so far."
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A solver option, VALUE as TOML, e.g. --option num_reads=64 (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def solve(
    file: str,
    solver_name: str,
    maximize: bool,
    seed: int | None,
    timeout: float | None,
    options: tuple[str, ...],
    as_json: bool,
) -> None:
    """Solve the QUBO in FILE (qbsolv .qubo or qslm JSON) and print the best sample.

    A .qubo file is minimised as written unless --maximize is given (or the file says
    `c qslm sense max`); the energy printed is the file's objective at the sample.
    """
    from qslm.qubo.io import read_problem

    raw = dict(parse_option(item) for item in options)
    solver = load_solver(solver_name, raw, key="--solver", prefix="--option")
    qubo = read_problem(file, sense="max" if maximize else None)
    solver.check_problem(qubo)
    result = solver.solve(qubo, seed=seed, time_limit=_positive(timeout, "--timeout"))
    sample = [] if result.best_sample is None else result.best_sample.astype(int).tolist()
    out: dict[str, Any] = {
        "file": file,
        "solver": solver_name,
        "version": result.version,
        "status": result.status,
        "sense": qubo.sense,
        "energy": result.best_energy,
        "sample": sample,
        "num_variables": qubo.num_variables,
        "wall_s": result.wall_s,
        "feasible": result.feasible,
        "seed": result.seed,
        "timings": result.timings,
        "info": result.to_dict()["info"],
    }
    if qubo.labels != tuple(range(qubo.num_variables)):
        out["labels"] = list(qubo.labels)
    if as_json:
        click.echo(json.dumps(out))
        return
    best = "maximum" if qubo.sense == "max" else "minimum"
    version = f" ({result.version})" if result.version else ""
    click.echo(f"solver   {solver_name}{version}, seed {result.seed}")
    click.echo(f"status   {result.status}")
    click.echo(f"energy   {result.best_energy:.10g}  (the {best} found)")
    click.echo(f"wall     {1000 * result.wall_s:.1f} ms")
    click.echo(f"ones     {sum(sample)} of {qubo.num_variables} variables")
    click.echo(f"sample   {''.join(map(str, sample))}")
