"""``qslm solve`` and ``qslm bench solvers``. Only click is imported at start-up; numpy and the
solvers load inside the commands."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from qslm.errors import ConfigError

if TYPE_CHECKING:
    from qslm.qubo.solver import QuboSolver


def parse_option(item: str, flag: str = "--option") -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as a TOML value (``3``, ``true``, ``[0.1, 5.0]``), else as
    a plain string."""
    from qslm.config import parse_key_value

    return parse_key_value(item, flag, f"{flag} num_reads=64")


def load_solver(name: str, raw: dict[str, Any], *, key: str, prefix: str) -> QuboSolver:
    """The registered solver ``name`` with validated options (errors name ``key``/``prefix``)."""
    from qslm.config import validate_options
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


@click.group()
def bench() -> None:
    """Benchmarks that print the reference beside our number."""


def _natural(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


@bench.command("solvers")
@click.option(
    "--solvers",
    "solver_names",
    default=None,
    metavar="A,B",
    help="Comma-separated solvers (default: every installed local solver).",
)
@click.option(
    "--instances",
    "pattern",
    required=True,
    metavar="GLOB",
    help="Instance files (.qubo or JSON), e.g. 'data/bqp50_*.qubo'.",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Calls per solver and instance (seeds 0, 1, ...).",
)
@click.option(
    "--best-known",
    "best_known_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Best-known values (JSON or Markdown; default: a README.md next to the instances).",
)
@click.option(
    "--maximize/--minimize",
    default=None,
    help="Objective sense (default: as the best-known values declare, else min).",
)
@click.option("--timeout", type=float, default=None, help="Time limit per call, seconds.")
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="SOLVER.KEY=VALUE",
    help="A solver option, e.g. --option anneal.num_reads=64 (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    help="Save a TTS bar chart (PNG; needs matplotlib).",
)
def bench_solvers(
    solver_names: str | None,
    pattern: str,
    repeats: int,
    best_known_file: str | None,
    maximize: bool | None,
    timeout: float | None,
    options: tuple[str, ...],
    as_json: bool,
    plot: str | None,
) -> None:
    """Compare QUBO solvers on instance files: best energy, gap to the best-known value,
    success rate, median wall time and time-to-target (99%)."""
    import glob

    from qslm.plugins import get_registry
    from qslm.qubo import bench as b
    from qslm.qubo.io import read_problem

    if plot:
        b.check_matplotlib()
    paths = sorted(
        (Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file()), key=_natural
    )
    if not paths:
        raise ConfigError(f"--instances {pattern!r}: no files match")
    best_known = b.load_best_known(paths, Path(best_known_file) if best_known_file else None)
    wanted = {True: "max", False: "min", None: None}[maximize]
    if wanted and best_known.sense and wanted != best_known.sense:
        flag = "--maximize" if best_known.sense == "max" else "--minimize"
        raise ConfigError(
            f"the best-known values in {best_known.source} are for sense "
            f"{best_known.sense!r}; pass {flag} or other best-known values"
        )
    sense = wanted or best_known.sense or "min"

    per_solver: dict[str, dict[str, Any]] = {}
    for item in options:
        key, value = parse_option(item)
        # Solver names may hold dots (dwave.sa); option keys do not.
        name, dot, opt = key.rpartition(".")
        if not dot or not opt:
            raise ConfigError(
                f"--option {item!r}: expected SOLVER.KEY=VALUE, e.g. anneal.num_reads=64"
            )
        per_solver.setdefault(name, {})[opt] = value
    registry = get_registry()
    if solver_names:
        names = [s.strip() for s in solver_names.split(",") if s.strip()]
    else:
        # By default: every local solver that runs without settings of its own (a wrapper
        # such as dwave.sampler needs its sampler named, so it is benchmarked only on request).
        names = []
        for spec in registry.components["qubo_solver"].values():
            cls = spec.load()
            caps = getattr(cls, "capabilities", None)
            if caps is None or caps.remote or caps.needs_credentials:
                continue
            try:
                cls.Options()
            except ValueError:  # pydantic's ValidationError: a required option
                continue
            names.append(spec.name)
    for name in per_solver:
        if name not in names:
            raise ConfigError(
                f"--option {name}.*: solver {name!r} is not benchmarked "
                f"(solvers: {', '.join(names)})"
            )
    solvers = [
        (n, load_solver(n, per_solver.get(n, {}), key="--solvers", prefix=f"--option {n}"))
        for n in names
    ]
    problems = [(p.stem, read_problem(p, sense=sense)) for p in paths]
    rows = b.run_benchmark(
        problems,
        solvers,
        repeats=repeats,
        best_known=best_known.values,
        time_limit=_positive(timeout, "--timeout"),
    )
    summary = b.summarise(rows)
    if plot:
        b.plot_tts(rows, Path(plot))
    if as_json:
        from qslm.qubo.solver import jsonable

        click.echo(
            json.dumps(
                jsonable(
                    {
                        "machine": b.machine_info(),
                        "sense": sense,
                        "repeats": repeats,
                        "rows": rows,
                        "summary": summary,
                        "best_known_source": best_known.source,
                    }
                )
            )
        )
        return
    click.echo(b.format_rows(rows, b.ROW_COLUMNS))
    click.echo("")
    click.echo(b.format_rows(summary, b.SUMMARY_COLUMNS))
    errors = {
        (row["solver"], row["note"].startswith("skipped")): row["error"]
        for row in rows
        if row.get("error")
    }
    for (solver_name, _), error in errors.items():
        click.echo(f"{solver_name}: {error}", err=True)
    source = best_known.source or "none (target: best found in this run)"
    click.echo(f"\nsense {sense}; {repeats} calls per solver and instance; best-known: {source}")
