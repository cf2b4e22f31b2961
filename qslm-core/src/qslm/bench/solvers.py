"""Solver benchmarks: success rate, time and time-to-target on instance files.

Time-to-target: with ``p`` the fraction of solver calls that reach the target energy and ``t``
the median wall time of a call, ``TTS = t * ln(0.01) / ln(1 - p)`` is the expected time to
reach the target with 99% probability by repeating calls (``t`` when p = 1, infinite when
p = 0). The target is the best-known value when one is supplied, else the best energy any
solver found in the same run.

Best-known values: :mod:`qslm.bench.best_known`.
"""

from __future__ import annotations

import math
import os
import platform
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
        runs = {s: _Runs() for s, _ in solvers}
        for solver_name, solver in solvers:
            runs[solver_name].collect(solver, qubo, repeats, seed, time_limit)
        proven = next((r.proven for r in reversed(runs.values()) if r.proven is not None), None)
        found = [e for rs in runs.values() for e, _, _ in rs.calls if e is not None]
        if name in best_known:
            target, source = best_known[name], "best-known"
        elif found:
            target = max(found) if qubo.sense == "max" else min(found)
            source = "best found"
        else:
            target, source = math.nan, "none"
        for solver_name, _ in solvers:
            row: dict[str, Any] = {
                "instance": name,
                "n": qubo.num_variables,
                "solver": solver_name,
                "target": target,
                "target_source": source,
            }
            rows.append(_row(row, runs[solver_name], qubo.sense, proven))
    return rows


@dataclass
class _Runs:
    """One solver's calls on one instance: (best energy, wall s, status) each, or why not."""

    calls: list[tuple[float | None, float, str]] = field(default_factory=list)
    error: str | None = None
    note: str | None = None
    proven: float | None = None  # a certified optimum (exact solvers say so)

    def collect(
        self, solver: QuboSolver, qubo: Qubo, repeats: int, seed: int, time_limit: float | None
    ) -> None:
        for k in range(repeats):
            try:
                solver.check_problem(qubo)
                r = solver.solve(qubo, seed=seed + k, time_limit=time_limit)
            except ProblemTooLarge as exc:
                self.error, self.note = str(exc), "skipped: too large"
                return
            except Exception as exc:  # a failing solver is a row, not a crash
                self.error = f"{type(exc).__name__}: {exc}"
                self.note = f"failed: {type(exc).__name__}"
                return
            self.calls.append((r.best_energy, r.wall_s, r.status))
            if r.info.get("optimal") is True and r.best_energy is not None:
                self.proven = r.best_energy


def _row(row: dict[str, Any], runs: _Runs, sense: str, proven: float | None) -> dict[str, Any]:
    """Complete ``row`` with the solver's best, gaps, success rate, median time and TTS."""
    rs, target = runs.calls, row["target"]
    row["repeats"] = len(rs)
    if runs.error is not None:
        row.update(error=runs.error, note=runs.note)
        if not rs:
            row.update(best=None, gap=None, success=0.0, median_wall_s=None, tts_s=math.inf)
            return row
    energies = [e for e, _, _ in rs if e is not None]
    best = (max(energies) if sense == "max" else min(energies)) if energies else None
    hits = sum(reached(e, target, sense) for e, _, _ in rs)
    p = hits / len(rs)
    t = statistics.median(w for _, w, _ in rs)
    gap = None
    if best is not None and math.isfinite(target):
        gap = (target - best if sense == "max" else best - target) / max(abs(target), 1e-12)
    row.update(
        best=best,
        gap=gap,
        gap_to_optimum=None if proven is None or best is None else _gap(best, proven, sense),
        success=p,
        median_wall_s=t,
        tts_s=tts(t, p),
        statuses=sorted({s for _, _, s in rs}),
    )
    return row


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
