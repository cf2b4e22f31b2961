"""``qslm bench``: ``solvers`` and ``attention``. Only click is imported at start-up; numpy,
torch and the solvers load inside the commands."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from qslm.commands.solve import _positive, load_solver, parse_option
from qslm.errors import ConfigError

if TYPE_CHECKING:
    from qslm.bench.best_known import BestKnown
    from qslm.plugins import Registry

STRATEGIES = ("naive", "stratified", "hybrid", "control_variate", "adaptive")


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ConfigError(f"{flag}: expected positive integers, got {text!r}")
    return values


@click.group()
def bench() -> None:
    """Benchmarks that print the reference beside our number."""


@bench.command("attention")
@click.option(
    "--strategies",
    default=",".join(STRATEGIES),
    show_default=True,
    help="Comma-separated sampling strategies.",
)
@click.option("--seq-lens", default="64,256,1024", show_default=True, help="Keys per row.")
@click.option("--samples", default="8,32,128", show_default=True, help="Samples per row, k.")
@click.option("--dim", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--heads", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--logit-scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Multiplies 1/sqrt(dim): larger gives peaked rows (small N_eff).",
)
@click.option(
    "--threads", default=1, show_default=True, type=click.IntRange(min=1), help="CPU threads."
)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG plot.")
def bench_attention(
    strategies: str,
    seq_lens: str,
    samples: str,
    dim: int,
    heads: int,
    repeats: int,
    seed: int,
    logit_scale: float,
    threads: int,
    as_json: bool,
    plot_path: str | None,
) -> None:
    """Relative error of sampled attention against k for each strategy, beside the naive
    theory sqrt((N_eff-1)/k), and time per call against exact attention (random Gaussian
    Q, K, V). Sampled attention computes every logit: its time is never a speed-up."""
    names = [s.strip() for s in strategies.split(",") if s.strip()]
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown:
        raise ConfigError(f"--strategies: unknown {unknown}; choose from {', '.join(STRATEGIES)}")
    from qslm.bench import attention as harness

    results = harness.run(
        names,
        _int_list(seq_lens, "--seq-lens"),
        _int_list(samples, "--samples"),
        dim=dim,
        heads=heads,
        repeats=repeats,
        seed=seed,
        logit_scale=logit_scale,
        threads=threads,
    )
    if as_json:
        for r in results:
            click.echo(json.dumps(r))
    else:
        click.echo(
            f"{'strategy':<16}{'n':>6}{'k':>6}{'rel_error':>11}{'theory':>9}{'N_eff':>9}"
            f"{'ms':>9}{'exact_ms':>10}{'sdpa_ms':>9}"
        )
        for r in results:
            click.echo(
                f"{r['strategy']:<16}{r['seq_len']:>6}{r['samples']:>6}{r['rel_error']:>11.4f}"
                f"{r['naive_theory']:>9.4f}{r['n_eff']:>9.1f}{r['ms_per_call']:>9.3f}"
                f"{r['exact_ms_per_call']:>10.3f}{r['sdpa_ms_per_call']:>9.3f}"
            )
    if plot_path:
        try:
            harness.plot(results, plot_path)
        except ImportError:
            raise ConfigError("--plot needs matplotlib (pip install matplotlib)") from None
        if not as_json:
            click.echo(f"plot written to {plot_path}")


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
    from qslm.bench import solvers as b
    from qslm.bench.best_known import load_best_known
    from qslm.plugins import get_registry
    from qslm.qubo.io import read_problem

    if plot:
        b.check_matplotlib()
    paths = _instances(pattern)
    best_known = load_best_known(paths, Path(best_known_file) if best_known_file else None)
    sense = _sense(best_known, maximize)
    per_solver = _solver_options(options)
    registry = get_registry()
    if solver_names:
        names = [s.strip() for s in solver_names.split(",") if s.strip()]
    else:
        names = _default_solvers(registry)
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

        machine = b.machine_info()
        click.echo(
            json.dumps(
                jsonable(
                    {
                        "machine": machine,
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
    _print_tables(rows, summary, sense, repeats, best_known)


def _instances(pattern: str) -> list[Path]:
    import glob

    paths = sorted(
        (Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file()), key=_natural
    )
    if not paths:
        raise ConfigError(f"--instances {pattern!r}: no files match")
    return paths


def _sense(best_known: BestKnown, maximize: bool | None) -> str:
    """The objective sense: as asked, else as the best-known values declare, else min."""
    wanted = {True: "max", False: "min", None: None}[maximize]
    if wanted and best_known.sense and wanted != best_known.sense:
        flag = "--maximize" if best_known.sense == "max" else "--minimize"
        raise ConfigError(
            f"the best-known values in {best_known.source} are for sense "
            f"{best_known.sense!r}; pass {flag} or other best-known values"
        )
    return wanted or best_known.sense or "min"


def _solver_options(options: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--option SOLVER.KEY=VALUE`` items by solver name."""
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
    return per_solver


def _default_solvers(registry: Registry) -> list[str]:
    """Every local solver that runs without settings of its own (a wrapper such as
    dwave.sampler needs its sampler named, so it is benchmarked only on request)."""
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
    return names


def _print_tables(
    rows: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    sense: str,
    repeats: int,
    best_known: BestKnown,
) -> None:
    from qslm.bench import solvers as b

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
