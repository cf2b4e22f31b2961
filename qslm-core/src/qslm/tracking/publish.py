"""The end of a tracked run (stage metrics, tags, artifacts, registry), and what
``qslm builds clean`` and ``qslm builds promote`` do to the runs of builds."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qslm import __version__
from qslm.builds import MANIFEST, flatten, write_json
from qslm.secrets import strip_credentials
from qslm.tracking.base import ARTIFACTS, FINISHED, Tracker, is_number, read_state


def finish_run(tracking: Any, build: Path, manifest: dict[str, Any]) -> None:
    """Everything a published build adds to its run; a failure on the way is recorded in the
    manifest's ``tracking`` key (``status: failed``) and the build stays as it is."""
    tracker, call = tracking.tracker, tracking._call
    assert tracker is not None
    name = f"{manifest['name']}@{manifest['version']}"
    if tracking.steps_logged == 0 and tracker.report_to is None:
        _replay_steps(tracking, build / "train_log.jsonl")  # --nproc: the ranks logged them
    call("log_metrics", tracker.log_metrics, stage_metrics(manifest), None)
    call("set_tags", tracker.set_tags, run_tags(manifest, name, build))
    files = [
        (build / f, "build/report" if f == "report" else "build")
        for f in ARTIFACTS
        if (build / f).exists()
    ]
    if getattr(tracker.options, "log_weights", False):
        art = manifest.get("artifact") or {}
        for sub in {art.get("model_dir"), art.get("tokenizer_dir")} - {None, "", "."}:
            files.append((build / sub, f"build/{sub}"))
    call("log_artifacts", tracker.log_artifacts, files)
    registry = call("register", tracker.register, name, int(manifest["version"][1:]))
    _write_tracking(build, manifest, tracking, registry)
    call("log_artifacts", tracker.log_artifacts, [(build / MANIFEST, "build")])
    call("end", tracker.end, FINISHED)
    if tracking.error:  # a step above failed: the manifest says so
        _write_tracking(build, manifest, tracking, registry)


def _write_tracking(
    build: Path, manifest: dict[str, Any], tracking: Any, registry: dict | None
) -> None:
    record = tracking.record()
    if registry:
        record["registry"] = registry
    manifest["tracking"] = record
    write_json(build / MANIFEST, manifest)


def stage_metrics(manifest: dict[str, Any]) -> dict[str, float]:
    """The evaluators' metrics (dotted keys), the select stage's objective and the timings."""
    out = {k: float(v) for k, v in flatten(manifest.get("metrics") or {}).items() if is_number(v)}
    select = manifest.get("select") or {}
    for key in ("objective", "energy"):
        if is_number(select.get(key)):
            out[f"select.{key}"] = float(select[key])
    for stage, seconds in (manifest.get("timings") or {}).items():
        if is_number(seconds):
            out[f"timings.{stage.removesuffix('_s')}_s"] = float(seconds)
    return out


def run_tags(manifest: dict[str, Any], name: str, build: Path) -> dict[str, str]:
    """The build (``name@vN``), its folder, data hash, solver and the qslm/plugin versions."""
    tags = {
        "qslm.build": name,
        "qslm.build_path": str(build),
        "qslm.version": __version__,
        "qslm.data_sha256": str((manifest.get("data") or {}).get("sha256", "")),
    }
    select = manifest.get("select") or {}
    if select.get("solver"):
        tags["qslm.select.solver"] = str(select["solver"])
    for key, comp in (manifest.get("components") or {}).items():
        if isinstance(comp, dict):
            tags[f"qslm.component.{key}"] = f"{comp.get('name')} ({comp.get('distribution')})"
    plugins = (manifest.get("versions") or {}).get("plugins") or {}
    for plugin, info in plugins.items():
        tags[f"qslm.plugin.{plugin}"] = f"{info.get('distribution')} {info.get('version')}"
    return tags


def _replay_steps(tracking: Any, log: Path) -> None:
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") in ("train", "eval") and isinstance(event.get("step"), int):
            step = event["step"]
            logs = {k: v for k, v in event.items() if k not in ("time", "event", "step")}
            tracking.log_step(step, logs)


# --- builds clean / builds promote ---------------------------------------------------------


def _tracker(name: str) -> Tracker:
    from qslm.plugins import get_registry

    tracker = get_registry().get("tracker", name).load()()
    assert isinstance(tracker, Tracker)
    return tracker


def _warn(progress: Callable[[str], None], what: str, exc: Exception) -> None:
    text = strip_credentials(" ".join(f"{type(exc).__name__}: {exc}".split())[:500])
    progress(f"warning: {what} failed ({text})")


def mark_killed(staging: Path, progress: Callable[[str], None]) -> None:
    """End as KILLED the tracked run of an interrupted staging folder about to be removed."""
    state = read_state(staging)
    if not state.get("tracker") or not state.get("run_id"):
        return
    try:
        if _tracker(state["tracker"]).mark_killed(state):
            progress(f"  {state['tracker']} run {state['run_id']} marked KILLED")
    except Exception as exc:  # the folder is removed all the same
        _warn(progress, f"marking {state['tracker']} run {state['run_id']} KILLED", exc)


def promote(build: Path, progress: Callable[[str], None]) -> None:
    """Move the registry alias to a build just promoted (``qslm builds promote``)."""
    try:
        record = json.loads((build / MANIFEST).read_text(encoding="utf-8")).get("tracking") or {}
    except (OSError, ValueError):
        return
    if not record.get("tracker"):
        return
    if not record.get("registry"):
        progress(f"  ({build.name} is not in {record['tracker']}'s model registry)")
        return
    try:
        line = _tracker(record["tracker"]).promote(record)
    except Exception as exc:  # the build is promoted; the registry is not
        _warn(progress, f"moving the {record['tracker']} registry alias", exc)
        return
    if line:
        progress(line)
