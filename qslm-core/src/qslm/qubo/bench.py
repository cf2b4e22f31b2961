"""Solver benchmarks: success rate, time and time-to-target on instance files.

Time-to-target: with ``p`` the fraction of solver calls that reach the target energy and ``t``
the median wall time of a call, ``TTS = t * ln(0.01) / ln(1 - p)`` is the expected time to
reach the target with 99% probability by repeating calls (``t`` when p = 1, infinite when
p = 0). The target is the best-known value when one is supplied, else the best energy any
solver found in the same run.

Best-known values come from ``--best-known FILE`` (JSON ``{"sense": "max", "values":
{"bqp50_1": 2098}}`` or a plain ``{"name": value}`` object, or a Markdown file) or, without it,
from a ``README.md`` next to the instances. In Markdown, a table whose header cells after the
first are integers is read as ``<row name>_<column>`` (``| bqp50 | 2098 | ...`` under
``| set | 1 | ...`` gives ``bqp50_1``); any other table as ``| name | value |``. A heading
above the table that says "maximum" or "minimum" declares the sense.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qslm.errors import ConfigError
from qslm.qubo.solver import ProblemTooLarge

if TYPE_CHECKING:
    from qslm.qubo.model import Qubo
    from qslm.qubo.solver import QuboSolver


def tts(t: float, p: float, confidence: float = 0.99) -> float:
    """Time to reach the target with ``confidence`` by repeating a call of ``t`` seconds that
    succeeds with probability ``p``."""
    if p >= 1:
        return t
    if p <= 0:
        return math.inf
    return t * math.log(1 - confidence) / math.log(1 - p)


def reached(energy: float | None, target: float, sense: str) -> bool:
    """Whether ``energy`` is at least as good as ``target`` (up to rounding)."""
    if energy is None:
        return False
    tol = 1e-9 * max(1.0, abs(target))
    return energy >= target - tol if sense == "max" else energy <= target + tol


@dataclass
class BestKnown:
    values: dict[str, float] = field(default_factory=dict)
    sense: str | None = None
    source: str = ""


def parse_markdown_best_known(text: str) -> tuple[dict[str, float], str | None]:
    """Best-known values and declared sense from Markdown tables (see the module docstring)."""
    values: dict[str, float] = {}
    sense: str | None = None
    heading = ""
    lines = text.splitlines()
    k = 0
    while k < len(lines):
        line = lines[k].strip()
        if line.startswith("#"):
            heading = line.lower()
        if not line.startswith("|"):
            k += 1
            continue
        table = []
        while k < len(lines) and lines[k].strip().startswith("|"):
            table.append([c.strip() for c in lines[k].strip().strip("|").split("|")])
            k += 1
        if len(table) < 3 or not all(set(c) <= set("-: ") for c in table[1]):
            continue
        header, rows = table[0], table[2:]
        numbered = len(header) > 2 and all(re.fullmatch(r"\d+", h) for h in header[1:])
        found = False
        for row in rows:
            if numbered:
                pairs = [(f"{row[0]}_{h}", v) for h, v in zip(header[1:], row[1:], strict=False)]
            else:
                pairs = [(row[0], row[1])] if len(row) >= 2 else []
            for key, value in pairs:
                try:
                    values[key.strip("`")] = float(value.replace(",", ""))
                    found = True
                except ValueError:
                    pass
        if found and sense is None:
            if "max" in heading:
                sense = "max"
            elif "min" in heading:
                sense = "min"
    return values, sense


def load_best_known(instances: Sequence[Path], path: Path | None = None) -> BestKnown:
    """Best-known values for ``instances`` from ``path``, else from README.md files next to
    them (an absent README gives no values)."""
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--best-known {path}: cannot be read: {exc}") from None
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{path}: line {exc.lineno}: JSON syntax error: {exc.msg}"
                ) from None
            sense = data.get("sense") if isinstance(data, dict) else None
            raw = data.get("values", data) if isinstance(data, dict) else None
            if not isinstance(raw, dict) or sense not in (None, "min", "max"):
                raise ConfigError(
                    f'{path}: expected {{"sense": "max", "values": {{"instance": number}}}}'
                )
            values = {}
            for key, value in raw.items():
                if key == "sense":
                    continue
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise ConfigError(f"{path}: values.{key}: expected a number, got {value!r}")
                values[key] = float(value)
            return BestKnown(values, sense, str(path))
        values, sense = parse_markdown_best_known(text)
        return BestKnown(values, sense, str(path))
    best = BestKnown()
    for folder in sorted({p.parent for p in instances}):
        readme = folder / "README.md"
        if readme.is_file():
            values, sense = parse_markdown_best_known(readme.read_text(encoding="utf-8"))
            best.values.update(values)
            best.sense = best.sense or sense
            best.source = ", ".join(filter(None, [best.source, str(readme)]))
    return best


def run_benchmark(
    problems: Sequence[tuple[str, Qubo]],
    solvers: Sequence[tuple[str, QuboSolver]],
    *,
    repeats: int = 5,
    best_known: dict[str, float] | None = None,
    seed: int = 0,
    time_limit: float | None = None,
) -> list[dict[str, Any]]:
    """One row per (instance, solver): best energy, target and gap, the gap to a proven optimum
    when an exact solver in the run certified one, success rate over ``repeats`` calls
    (seeds ``seed``, ``seed + 1``, ...), median wall time and TTS."""
    best_known = best_known or {}
    rows = []
    for name, qubo in problems:
        runs: dict[str, list[tuple[float | None, float, str]]] = {}
        errors: dict[str, str] = {}
        notes: dict[str, str] = {}
        proven: float | None = None
        for solver_name, solver in solvers:
            runs[solver_name] = []
            for k in range(repeats):
                try:
                    solver.check_problem(qubo)
                    r = solver.solve(qubo, seed=seed + k, time_limit=time_limit)
                except ProblemTooLarge as exc:
                    errors[solver_name] = str(exc)
                    notes[solver_name] = "skipped: too large"
                    break
                except Exception as exc:  # a failing solver is a row, not a crash
                    errors[solver_name] = f"{type(exc).__name__}: {exc}"
                    notes[solver_name] = f"failed: {type(exc).__name__}"
                    break
                runs[solver_name].append((r.best_energy, r.wall_s, r.status))
                if r.info.get("optimal") is True and r.best_energy is not None:
                    proven = r.best_energy  # a certified optimum (exact solvers say so)
        found = [e for rs in runs.values() for e, _, _ in rs if e is not None]
        if name in best_known:
            target, source = best_known[name], "best-known"
        elif found:
            target = max(found) if qubo.sense == "max" else min(found)
            source = "best found"
        else:
            target, source = math.nan, "none"
        for solver_name, _ in solvers:
            rs = runs[solver_name]
            row: dict[str, Any] = {
                "instance": name,
                "n": qubo.num_variables,
                "solver": solver_name,
                "target": target,
                "target_source": source,
                "repeats": len(rs),
            }
            if solver_name in errors:
                row.update(error=errors[solver_name], note=notes[solver_name])
            if solver_name in errors and not rs:
                row.update(best=None, gap=None, success=0.0, median_wall_s=None, tts_s=math.inf)
                rows.append(row)
                continue
            energies = [e for e, _, _ in rs if e is not None]
            best = (max(energies) if qubo.sense == "max" else min(energies)) if energies else None
            hits = sum(reached(e, target, qubo.sense) for e, _, _ in rs)
            p = hits / len(rs)
            t = statistics.median(w for _, w, _ in rs)
            gap = None
            if best is not None and math.isfinite(target):
                gap = (target - best if qubo.sense == "max" else best - target) / max(
                    abs(target), 1e-12
                )
            row.update(
                best=best,
                gap=gap,
                gap_to_optimum=None
                if proven is None or best is None
                else _gap(best, proven, qubo.sense),
                success=p,
                median_wall_s=t,
                tts_s=tts(t, p),
                statuses=sorted({s for _, _, s in rs}),
            )
            rows.append(row)
    return rows


def _gap(best: float, reference: float, sense: str) -> float:
    """How far ``best`` falls short of ``reference``, relative to it (0: reached)."""
    short = reference - best if sense == "max" else best - reference
    return max(0.0, short) / max(abs(reference), 1e-12)


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per solver: instances solved (success > 0), median TTS and median wall time."""
    out = []
    for solver in dict.fromkeys(r["solver"] for r in rows):
        mine = [r for r in rows if r["solver"] == solver]
        walls = [r["median_wall_s"] for r in mine if r["median_wall_s"] is not None]
        out.append(
            {
                "solver": solver,
                "instances": len(mine),
                "solved": sum(r["success"] > 0 for r in mine),
                "all_reached": sum(r["success"] == 1 for r in mine),
                "median_tts_s": statistics.median(r["tts_s"] for r in mine),
                "median_wall_s": statistics.median(walls) if walls else None,
            }
        )
    return out


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        if math.isnan(value):
            return "-"
        return f"{value:.{digits}g}"
    return str(value)


def format_rows(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A plain-text table of ``rows`` with ``(key, heading)`` columns."""
    table = [[h for _, h in columns]]
    for r in rows:
        cells = []
        for key, _ in columns:
            v = r.get(key)
            if key.startswith("gap") and isinstance(v, float):
                cells.append(f"{100 * v:.3g}%")
            elif key.endswith("_s") and isinstance(v, float) and math.isfinite(v):
                cells.append(f"{1000 * v:.3g} ms")
            else:
                cells.append(_fmt(v))
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    )


ROW_COLUMNS = [
    ("instance", "instance"),
    ("n", "n"),
    ("solver", "solver"),
    ("best", "best"),
    ("target", "target"),
    ("gap", "gap"),
    ("gap_to_optimum", "gap to proven optimum"),
    ("success", "success"),
    ("median_wall_s", "median wall"),
    ("tts_s", "TTS(99%)"),
    ("note", ""),
]
SUMMARY_COLUMNS = [
    ("solver", "solver"),
    ("instances", "instances"),
    ("all_reached", "always reached"),
    ("solved", "reached at least once"),
    ("median_wall_s", "median wall"),
    ("median_tts_s", "median TTS(99%)"),
]


def check_matplotlib() -> None:
    """Raise a :class:`ConfigError` now, before any work, when ``--plot`` cannot be honoured."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError("--plot needs matplotlib, which is not installed: pip install matplotlib")


def plot_tts(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """A bar chart of TTS per instance and solver (log scale); needs matplotlib."""
    check_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    instances = list(dict.fromkeys(r["instance"] for r in rows))
    solvers = list(dict.fromkeys(r["solver"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, len(instances) * 0.6), 4))
    width = 0.8 / max(1, len(solvers))
    for k, solver in enumerate(solvers):
        ys = []
        for inst in instances:
            row = next((r for r in rows if r["instance"] == inst and r["solver"] == solver), None)
            v = row["tts_s"] if row else math.inf
            ys.append(v if math.isfinite(v) else math.nan)
        ax.bar([i + k * width for i in range(len(instances))], ys, width, label=solver)
    ax.set_yscale("log")
    ax.set_ylabel("time to target, 99% (s)")
    ax.set_xticks(
        [i + 0.4 - width / 2 for i in range(len(instances))], instances, rotation=45, ha="right"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine_info() -> dict[str, Any]:
    """Machine and library versions, for benchmark reports."""
    import numpy as np

    from qslm import __version__

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "qslm": __version__,
    }


def random_qubo(
    n: int, *, density: float = 0.1, weight: int = 100, seed: int = 0, sense: str = "max"
) -> Qubo:
    """A Beasley-style instance: integer weights uniform in [-weight, weight] on the diagonal
    and on a ``density`` fraction of the pairs."""
    import numpy as np

    from qslm.qubo.model import Qubo

    rng = np.random.default_rng(seed)
    linear = rng.integers(-weight, weight + 1, size=n).astype(np.float64)
    upper = np.triu(rng.integers(-weight, weight + 1, size=(n, n)), 1).astype(np.float64)
    upper *= np.triu(rng.random((n, n)) < density, 1)
    return Qubo(linear, upper, sense=sense)  # type: ignore[arg-type]
