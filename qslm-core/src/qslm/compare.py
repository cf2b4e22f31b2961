"""What changed from one build to another: ``qslm builds compare``."""

from __future__ import annotations

from typing import Any

from qslm.builds import _MISSING, config_diff


def compare_builds(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Differences between two manifests: ``config`` (dotted keys), ``metrics`` (with delta
    and relative change) and ``versions`` (components, libraries and plugins)."""

    def show(value: Any) -> Any:
        return "(absent)" if value is _MISSING else value

    config = [
        {"key": k, "old": show(a), "new": show(b)}
        for k, a, b in config_diff(
            (old.get("pipeline") or {}).get("config") or {},
            (new.get("pipeline") or {}).get("config") or {},
        )
    ]
    metrics = []
    for k, a, b in config_diff(old.get("metrics") or {}, new.get("metrics") or {}):
        row: dict[str, Any] = {"key": k, "old": show(a), "new": show(b)}
        if all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b)):
            row["delta"] = b - a
            row["relative"] = (b - a) / abs(a) if a else None
        metrics.append(row)
    old_versions = {"components": _component_versions(old), **(old.get("versions") or {})}
    new_versions = {"components": _component_versions(new), **(new.get("versions") or {})}
    versions = [
        {"key": k, "old": show(a), "new": show(b)}
        for k, a, b in config_diff(old_versions, new_versions)
    ]
    return {"config": config, "metrics": metrics, "versions": versions}


def _component_versions(manifest: dict[str, Any]) -> dict[str, Any]:
    """``{key: "name distribution version"}`` of each component of a build."""
    out = {}
    for key, comp in (manifest.get("components") or {}).items():
        if isinstance(comp, dict):
            out[key] = " ".join(
                str(comp[f]) for f in ("name", "distribution", "version") if comp.get(f)
            )
    return out
