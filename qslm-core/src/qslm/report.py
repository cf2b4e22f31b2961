"""A build's human report: ``report.md`` with PNG plots in ``report/``.

Training and validation loss against steps, evaluator metrics, the QUBO stages' solver
energies and fallbacks, attention error where measured. Each section is drawn on its own: a
section that fails becomes a warning line in the report, never a lost build.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qslm.builds import RUN_STATE
from qslm.report_plots import PLOTS
from qslm.report_plots import figure as _figure
from qslm.report_plots import fmt as _fmt
from qslm.report_plots import save as _save
from qslm.report_plots import table as _table

REPORT = "report.md"
_LAYER = re.compile(r"^attention_rel_error_layer_(\d+)$")


def report_or_warn(build_dir: Path, manifest: dict[str, Any], warn: Callable[[str], None]) -> None:
    """:func:`write_report`, and on any failure a warning instead of an exception (the
    pipeline calls this just before publishing: a report must never cost a build)."""
    try:
        write_report(Path(build_dir), manifest)
        manifest["report"] = REPORT
    except Exception as exc:  # the build matters more than its report
        warn(f"  warning: no report ({type(exc).__name__}: {exc}); `qslm report` retries")


def write_report(build_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write ``build_dir/report.md`` and its plots under ``build_dir/report/``; returns the
    report's path."""
    build_dir = Path(build_dir)
    plots = build_dir / PLOTS
    plots.mkdir(exist_ok=True)
    events = _read_events(build_dir / "train_log.jsonl")
    lines = _header(build_dir, manifest)
    for title, section in (
        ("Training", _training),
        ("Evaluation", _evaluation),
        ("QUBO stages", _qubo),
        ("Attention error", _attention),
    ):
        lines += ["", f"## {title}", ""]
        try:
            lines += section(build_dir, manifest, events, plots)
        except Exception as exc:  # one broken section must not hide the others
            lines.append(f"> **warning**: this section failed: {type(exc).__name__}: {exc}")
    lines += ["", "## Files", ""]
    # manifest.json is listed before it exists: publishing writes it right after the report,
    # and removes the staging folder's run.json (what `qslm run --resume` reads) then.
    names = {"manifest.json"} | {
        p.name + ("/" if p.is_dir() else "")
        for p in build_dir.iterdir()
        if not p.name.startswith(".") and p.name not in (REPORT, RUN_STATE)
    }
    lines += [f"- `{name}`" for name in sorted(names)]
    path = build_dir / REPORT
    tmp = build_dir / f".{REPORT}.tmp"
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _read_events(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run: skip it, keep the rest
        if isinstance(record, dict):
            events.append(record)
    return events


def _header(build_dir: Path, manifest: dict[str, Any]) -> list[str]:
    # No version in the title: the pipeline writes the report before publishing, when the
    # number is not yet known (the build's folder name says it).
    lines = [f"# Build report: {manifest.get('name', build_dir.parent.name)}", ""]
    if manifest.get("description"):
        lines += [str(manifest["description"]), ""]
    lines += [
        f"- created: {manifest.get('created', '?')}",
        f"- seed: {manifest.get('seed', '?')}",
    ]
    data = manifest.get("data") or {}
    if data:
        lines.append(
            f"- data: {data.get('train_records', '?')} training and "
            f"{data.get('validation_records', '?')} validation records, sha256 "
            f"`{str(data.get('sha256', ''))[:12]}`"
        )
    timings = manifest.get("timings") or {}
    if timings:
        lines.append("- timings: " + ", ".join(f"{k} {_fmt(v)}s" for k, v in timings.items()))
    components = manifest.get("components") or {}
    if components:
        rows = [
            [key, c.get("name", ""), c.get("distribution", ""), c.get("version", "")]
            for key, c in components.items()
            if isinstance(c, dict)
        ]
        lines += ["", *_table(["stage", "component", "distribution", "version"], rows)]
    return lines


def _training(
    build_dir: Path, manifest: dict[str, Any], events: list[dict[str, Any]], plots: Path
) -> list[str]:
    train = [(e["step"], e["loss"]) for e in events if e.get("event") == "train" and "loss" in e]
    evals = [
        (e["step"], e["eval_loss"])
        for e in events
        if "eval_loss" in e and "step" in e and e.get("event") != "train"
    ]
    if not train and not evals:
        return ["No training steps were logged (no `train_log.jsonl` events)."]
    fig = _figure()
    ax = fig.add_subplot()
    if train:
        ax.plot(
            *zip(*train, strict=True),
            label="training loss",
            marker="." if len(train) < 50 else None,
        )
    if evals:
        ax.plot(*zip(*evals, strict=True), label="validation loss", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Loss against steps")
    ax.grid(alpha=0.3)
    ax.legend()
    lines = [_save(fig, plots, "loss.png"), ""]
    rows = []
    if train:
        rows.append(["training", len(train), train[0][1], train[-1][1], min(v for _, v in train)])
    if evals:
        rows.append(["validation", len(evals), evals[0][1], evals[-1][1], min(v for _, v in evals)])
    lines += _table(["loss", "points", "first", "last", "lowest"], rows)
    return lines


def _evaluation(
    build_dir: Path, manifest: dict[str, Any], events: list[dict[str, Any]], plots: Path
) -> list[str]:
    from qslm.report_metrics import evaluation_section

    return evaluation_section(build_dir, manifest, plots, skip=_LAYER)


def _select_record(build_dir: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    record = manifest.get("select")
    path = build_dir / "select.json"
    if not record and path.is_file():
        record = json.loads(path.read_text(encoding="utf-8"))
    return record if isinstance(record, dict) else None


def _qubo(
    build_dir: Path, manifest: dict[str, Any], events: list[dict[str, Any]], plots: Path
) -> list[str]:
    record = _select_record(build_dir, manifest)
    modules = [e for e in events if e.get("event") == "module_selection"]
    if not record and not modules:
        return ["This build ran no QUBO stage."]
    lines: list[str] = []
    if record:
        lines += _select_section(record, plots)
    if modules:
        lines += [""] * bool(lines) + _module_selection_section(modules, plots)
    return lines


def _select_section(record: dict[str, Any], plots: Path) -> list[str]:
    attempts = [a for a in record.get("attempts") or [] if isinstance(a, dict)]
    lines = [
        f"`[select]` kept {record.get('k', '?')} of {record.get('n', '?')} training records; "
        f"answer from **{record.get('solver') or 'repair'}** (status {record.get('status', '?')}"
        f"{', repaired' if record.get('repaired') else ''}), energy "
        f"{_fmt(record.get('energy'))}.",
        "",
    ]
    better = select_energy_direction(record)
    lines += [f"Energies and objectives below: {better} is better.", ""]
    comparison = record.get("comparison") or {}
    fig = _figure(9.0, 3.8)
    # one convention for the figure, stated once: a build before the sense was recorded
    # solved the maximised selection objective too
    fig.suptitle(f"[select]: {better} is better in both panels", fontsize=10)
    ax = fig.add_subplot(1, 2, 1)
    if attempts:
        labels = [f"{i + 1}. {a.get('solver') or '?'}" for i, a in enumerate(attempts)]
        energies = [a.get("energy") for a in attempts]
        ok = [a.get("status") == "ok" for a in attempts]
        heights = [e if isinstance(e, int | float) else 0.0 for e in energies]
        ax.bar(
            labels,
            heights,
            color=["tab:green" if good else "tab:red" for good in ok],
        )
        for x, (e, h, a) in enumerate(zip(energies, heights, attempts, strict=True)):
            text = _fmt(e) if isinstance(e, int | float) else a.get("status", "failed")
            ax.annotate(
                text,
                (x, h / 2),
                ha="center",
                va="center",
                bbox={"boxstyle": "round", "fc": "white", "alpha": 0.8},
            )
        ax.set_ylabel(f"best energy ({better} is better)")
        ax.set_title("Solver attempts in order (red: failed)", fontsize=10)
        ax.tick_params(axis="x", rotation=20)
    else:
        ax.text(0.5, 0.5, "no solver attempts recorded", ha="center", transform=ax.transAxes)
    ax2 = fig.add_subplot(1, 2, 2)
    keys = [("chosen", "chosen"), ("greedy", "greedy"), ("random_mean", "random mean")]
    keys.append(("random_best", "random best"))
    shown = [
        (label, comparison[k]) for k, label in keys if isinstance(comparison.get(k), int | float)
    ]
    if shown:
        ax2.bar([s[0] for s in shown], [s[1] for s in shown], color="tab:purple")
        ax2.set_title("Subset objective (higher is better)", fontsize=10)
        ax2.set_ylabel("objective (higher is better)")
        ax2.tick_params(axis="x", rotation=20)
    lines.append(_save(fig, plots, "select.png"))
    if attempts:
        rows = [
            [
                i + 1,
                a.get("solver") or "?",
                a.get("status", "?"),
                a.get("energy", ""),
                a.get("wall_s", ""),
                a.get("reason", ""),
            ]
            for i, a in enumerate(attempts)
        ]
        failed = sum(1 for a in attempts if a.get("status") != "ok")
        lines += [
            "",
            f"{len(attempts)} attempt(s), {failed} failed"
            + (" (each failure fell back to the next solver)" if failed else ""),
            "",
            *_table(["#", "solver", "status", "energy", "wall s", "reason"], rows),
        ]
    if shown:
        lines += ["", *_table(["subset", "objective"], [[s[0], s[1]] for s in shown])]
    return lines


def select_energy_direction(record: dict[str, Any]) -> str:
    """Which attempt energy is better, "higher" or "lower", from the selection QUBO's sense
    (the selection objective is maximised; builds from before the sense was recorded too)."""
    return "lower" if (record.get("qubo") or {}).get("sense") == "min" else "higher"


def _best_energy(event: dict[str, Any]) -> float | None:
    energies = [
        a["energy"]
        for a in event.get("attempts") or []
        if isinstance(a, dict)
        and a.get("status") == "ok"
        and isinstance(a.get("energy"), int | float)
    ]
    if energies:
        # the module-selection objective is maximised (qslm.qubo.modules): the best is the max
        return max(energies)
    energy = event.get("energy")
    return energy if isinstance(energy, int | float) else None


def _module_selection_section(modules: list[dict[str, Any]], plots: Path) -> list[str]:
    fallbacks = sum(1 for e in modules if e.get("fallback_used"))
    lines = [
        f"{len(modules)} module-selection QUBO(s) solved during training, "
        f"{fallbacks} by a fallback solver.",
        "",
    ]
    steps = [e.get("step", i) for i, e in enumerate(modules)]
    energy = [_best_energy(e) for e in modules]
    objective = [e.get("objective") for e in modules]
    fig = _figure()
    ax = fig.add_subplot()
    drawn = False
    for label, values in (("best solver energy", energy), ("objective", objective)):
        pts = [(s, v) for s, v in zip(steps, values, strict=True) if isinstance(v, int | float)]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=label)
            drawn = True
    fall = [
        (s, v) for s, v, e in zip(steps, energy, modules, strict=True) if e.get("fallback_used")
    ]
    fall = [(s, v) for s, v in fall if v is not None]
    if fall:
        ax.scatter(*zip(*fall, strict=True), color="tab:red", zorder=3, label="fallback used")
    if drawn:
        ax.set_xlabel("step")
        ax.set_title("Module-selection QUBOs during training (higher is better)")
        ax.set_ylabel("objective / energy (maximised)")
        ax.grid(alpha=0.3)
        ax.legend()
        lines += [_save(fig, plots, "module_selection.png"), ""]
    rows = [
        [
            e.get("step", ""),
            e.get("solver", ""),
            "yes" if e.get("fallback_used") else "no",
            _best_energy(e) if _best_energy(e) is not None else "",
            e.get("objective", ""),
            len(e.get("chosen") or []),
            f"{e.get('params', '?')}/{e.get('budget', '?')}",
        ]
        for e in modules
    ]
    headers = ["step", "solver", "fallback", "energy", "objective", "modules", "params/budget"]
    return lines + _table(headers, rows)


def _attention(
    build_dir: Path, manifest: dict[str, Any], events: list[dict[str, Any]], plots: Path
) -> list[str]:
    found = {}
    for name, m in (manifest.get("metrics") or {}).items():
        if not isinstance(m, dict):
            continue
        layers = sorted(
            (int(match.group(1)), float(v))
            for k, v in m.items()
            if (match := _LAYER.match(k)) and isinstance(v, int | float)
        )
        if layers:
            found[name] = (layers, m)
    if not found:
        return ["Not measured (add `[evaluate.attention-error]` to the pipeline)."]
    lines: list[str] = []
    fig = _figure(7.0, 3.5 * len(found))
    for i, (name, (layers, m)) in enumerate(found.items(), start=1):
        ax = fig.add_subplot(len(found), 1, i)
        ax.bar([str(layer) for layer, _ in layers], [v for _, v in layers], color="tab:orange")
        ax.set_xlabel("layer")
        ax.set_ylabel("relative error")
        ax.set_title(f"{name}: attention output error against exact attention")
        keys = ["attention_rel_error_mean", "perplexity_exact", "perplexity_backend"]
        keys.append("perplexity_change")
        rows = [[k, m[k]] for k in keys if k in m]
        rows += [[f"layer {layer}", v] for layer, v in layers]
        lines += [f"**{name}**", "", *_table(["measure", "value"], rows), ""]
    return [_save(fig, plots, "attention_error.png"), "", *lines]
