"""The report's evaluation section: each metric of the trained model against its reference
(the untrained initialisation, or the base model of a fine-tune), the metrics across the
pipeline's earlier builds (v1, v2, ...) so that a regression shows, and sizes and counts as a
table. Each plot states which way is better; a metric with no known direction says so.

The data behind each plot comes from a function of its own (:func:`comparisons`,
:func:`history`), which the tests check instead of pixels.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qslm.report_plots import figure, fmt, save, table

_VERSION = re.compile(r"^v(\d+)$")
MAX_HISTORY_PLOTS = 8
# metric name parts -> which way is better; the first rule that matches wins
_DIRECTIONS = (
    (("perplexity_ratio",), "higher"),
    (("coverage", "similarity", "accuracy", "score"), "higher"),
    (("perplexity", "loss", "error"), "lower"),
)


def direction(metric: str) -> str | None:
    """Which way is better for a metric name, "lower" or "higher"; None when unknown."""
    for parts, better in _DIRECTIONS:
        if any(p in metric for p in parts):
            return better
    return None


def numeric(metrics: Any, skip: re.Pattern[str] | None = None) -> dict[str, float | int]:
    """The finite int and float metrics of one evaluator (bools and strings dropped)."""
    if not isinstance(metrics, dict):
        return {}
    return {
        k: v
        for k, v in metrics.items()
        if isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
        and not (skip and skip.match(k))
    }


@dataclass(frozen=True)
class Comparison:
    """One metric of the trained model beside the same metric of its reference."""

    evaluator: str
    metric: str
    value: float
    reference: float
    label: str  # what the value is of, e.g. "trained"
    reference_label: str  # e.g. "untrained (same initialisation)" or "base model"
    better: str | None


def comparisons(manifest: dict[str, Any]) -> list[Comparison]:
    """Every ``m`` / ``m_untrained`` pair (and attention-error's backend / exact pair)."""
    adapter = (manifest.get("artifact") or {}).get("kind") == "adapter"
    reference = "base model" if adapter else "untrained (same initialisation)"
    out = []
    for evaluator, raw in (manifest.get("metrics") or {}).items():
        m = numeric(raw)
        for name, value in m.items():
            ref = m.get(f"{name}_untrained")
            if ref is not None:
                out.append(
                    Comparison(evaluator, name, value, ref, "trained", reference, direction(name))
                )
        if "perplexity_backend" in m and "perplexity_exact" in m:
            out.append(
                Comparison(
                    evaluator,
                    "perplexity",
                    m["perplexity_backend"],
                    m["perplexity_exact"],
                    "with the backend",
                    "exact attention",
                    "lower",
                )
            )
    return out


def earlier_builds(build_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(version, manifest)`` of the builds of the same pipeline before ``build_dir`` (all
    of them when it is a staging folder), oldest first; unreadable ones are skipped."""
    build_dir = Path(build_dir)
    own = _VERSION.match(build_dir.name)
    limit = int(own.group(1)) if own else math.inf
    found = []
    for path in build_dir.parent.iterdir():
        match = _VERSION.match(path.name)
        if not match or int(match.group(1)) >= limit or path == build_dir:
            continue
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict):
            found.append((int(match.group(1)), path.name, manifest))
    return [(name, manifest) for _, name, manifest in sorted(found, key=lambda t: t[0])]


def history(
    build_dir: Path, manifest: dict[str, Any], skip: re.Pattern[str] | None = None
) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """``(evaluator, metric) -> [(version, value), ...]`` over the earlier builds and this one
    (last, labelled with its folder name or "this build"), for the float metrics of this
    build that at least one earlier build also measured."""
    current = Path(build_dir).name
    label = current if _VERSION.match(current) else "this build"
    runs = [*earlier_builds(build_dir), (label, manifest)]
    out: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for evaluator, raw in (manifest.get("metrics") or {}).items():
        for name, value in numeric(raw, skip).items():
            if isinstance(value, int):
                continue  # sizes and counts: the table
            points = []
            for version, m in runs:
                old = numeric((m.get("metrics") or {}).get(evaluator)).get(name)
                if old is not None:
                    points.append((version, float(old)))
            if len(points) > 1:
                out[(evaluator, name)] = points
    return out


def _better(better: str | None) -> str:
    return f"{better} is better" if better else "no better direction known"


def _comparison_plot(found: list[Comparison], plots: Path) -> str:
    fig = figure(7.0, 1.0 + 2.2 * len(found))
    for i, c in enumerate(found, start=1):
        ax = fig.add_subplot(len(found), 1, i)
        ax.barh([c.reference_label, c.label], [c.reference, c.value], color=["0.6", "tab:blue"])
        for y, v in enumerate((c.reference, c.value)):
            ax.annotate(fmt(v), (v, y), xytext=(3, 0), textcoords="offset points", va="center")
        ax.set_title(f"{c.evaluator}: {c.metric} ({_better(c.better)})", fontsize=10)
        ax.margins(x=0.15)
    return save(fig, plots, "compare.png")


def _history_plot(series: dict[tuple[str, str], list[tuple[str, float]]], plots: Path) -> str:
    shown = sorted(series, key=lambda key: direction(key[1]) is None)[:MAX_HISTORY_PLOTS]
    fig = figure(7.0, 1.0 + 2.2 * len(shown))
    for i, key in enumerate(shown, start=1):
        ax = fig.add_subplot(len(shown), 1, i)
        labels, values = zip(*series[key], strict=True)
        ax.plot(labels, values, marker="o")
        ax.plot(labels[-1:], values[-1:], marker="o", color="tab:red")  # this build
        ax.set_title(f"{key[0]}: {key[1]} across builds ({_better(direction(key[1]))})")
        ax.grid(alpha=0.3)
    return save(fig, plots, "history.png")


def evaluation_section(
    build_dir: Path, manifest: dict[str, Any], plots: Path, *, skip: re.Pattern[str]
) -> list[str]:
    """The report lines (plots and tables) of the evaluator metrics."""
    metrics = {n: numeric(m, skip) for n, m in (manifest.get("metrics") or {}).items()}
    metrics = {n: m for n, m in metrics.items() if m}
    if not metrics:
        return ["No evaluator metrics in this build."]
    lines: list[str] = []
    found = comparisons(manifest)
    if found:
        lines += [_comparison_plot(found, plots), ""]
        rows = [[c.evaluator, c.metric, c.value, c.reference, c.reference_label] for c in found]
        lines += [*table(["evaluator", "metric", "trained", "reference", "is"], rows), ""]
    series = history(build_dir, manifest, skip)
    if series:
        lines += [_history_plot(series, plots), ""]
    measures = [
        [name, k, v, direction(k) or ""]
        for name, m in metrics.items()
        for k, v in m.items()
        if not isinstance(v, int)
    ]
    counts = [
        [name, k, v] for name, m in metrics.items() for k, v in m.items() if isinstance(v, int)
    ]
    if measures:
        lines += table(["evaluator", "metric", "value", "better"], measures)
    if counts:
        lines += ["", "Sizes and counts:", "", *table(["evaluator", "measure", "value"], counts)]
    return lines
