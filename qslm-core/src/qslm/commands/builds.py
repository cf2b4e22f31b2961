"""``qslm builds``: list, show, compare, promote and clean versioned builds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from qslm.commands.flags import _output_option
from qslm.errors import QslmError


@click.group()
def builds() -> None:
    """Inspect, compare and promote versioned builds."""


def _metric_summary(manifest: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={val:.4g}" if isinstance(val, float) else f"{k}={val}"
        for ev in manifest.get("metrics", {}).values()
        if isinstance(ev, dict)
        for k, val in list(ev.items())[:2]
    )


@builds.command("list")
@click.argument("where", required=False, metavar="[OUTPUT | NAME]")
@_output_option
def builds_list(where: str | None, output: str | None) -> None:
    """List the builds in an output folder (default ./builds), or of one pipeline NAME.

    \b
    qslm builds list                 every pipeline in ./builds
    qslm builds list runs/           every pipeline in runs/
    qslm builds list quickstart      one pipeline in ./builds (or --output)
    The current (promoted) build is marked with *; runs in progress or interrupted follow.
    """
    from qslm.builds import (
        BuildStore,
        listing_target,
        pipeline_names,
        read_manifest,
        staging_status,
    )

    root, name = listing_target(where, output)
    if not root.is_dir():
        raise QslmError(f"{root}: no builds folder here (name one, or use --output)")
    names = [name] if name else pipeline_names(root)
    for n in names:
        store = BuildStore(root, n)
        current = store.current_or_latest()
        for v in store.versions():
            manifest = read_manifest(store.path(v))
            mark = "*" if v == current else " "
            created = manifest.get("created", "")
            click.echo(f"{mark} {n}@v{v}  {created}  {_metric_summary(manifest)}")
        for staging in store.stagings():
            status = staging_status(staging)
            hint = {
                "interrupted": "interrupted: continue with qslm run PIPELINE --resume, "
                "or remove with qslm builds clean",
                "running": "running",
            }.get(status, f"{status}: remove with qslm builds clean if no run uses it")
            click.echo(f"  {n}/{staging.name}  ({hint})")


@builds.command("show")
@click.argument("build")
@_output_option
def builds_show(build: str, output: str | None) -> None:
    """Print the manifest of BUILD: a folder, NAME@vN, NAME@current, NAME@latest, or vN
    when the output folder holds one pipeline."""
    from qslm.builds import read_manifest, resolve_build

    path = resolve_build(build, Path(output or "builds"))
    click.echo(f"# {path}")
    report = path / "report.md"
    click.echo(f"# report: {report}" if report.is_file() else f"# no report: qslm report {path}")
    click.echo(json.dumps(read_manifest(path), indent=2))


@builds.command("compare")
@click.argument("old")
@click.argument("new")
@_output_option
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def builds_compare(old: str, new: str, output: str | None, as_json: bool) -> None:
    """What changed from build OLD to build NEW: configuration (dotted keys, old -> new),
    metrics (with relative change) and component/library versions."""
    from qslm.builds import read_manifest, resolve_build
    from qslm.compare import compare_builds

    root = Path(output or "builds")
    a, b = resolve_build(old, root), resolve_build(new, root)
    diff = compare_builds(read_manifest(a), read_manifest(b))
    if as_json:
        click.echo(json.dumps({"old": str(a), "new": str(b), **diff}, indent=2, default=str))
        return
    click.echo(f"# {a} -> {b}")
    for title, rows in (
        ("configuration", diff["config"]),
        ("metrics", diff["metrics"]),
        ("versions", diff["versions"]),
    ):
        click.echo(f"{title}:" if rows else f"{title}: same")
        for row in rows:
            line = f"  {row['key']}: {row['old']} -> {row['new']}"
            if row.get("delta") is not None:
                line += f"  ({row['delta']:+.4g}"
                line += f", {row['relative']:+.1%})" if row.get("relative") is not None else ")"
            click.echo(line)


@builds.command("promote")
@click.argument("build")
@_output_option
def builds_promote(build: str, output: str | None) -> None:
    """Make BUILD the current build of its pipeline (NAME@current); promoting an older build
    rolls back."""
    from qslm.builds import BuildStore, resolve_build

    path = resolve_build(build, Path(output or "builds"))
    store = BuildStore(path.parent.parent, path.parent.name)
    before = store.current()
    store.promote(int(path.name[1:]))
    was = f" (was v{before})" if before else ""
    click.echo(f"{path.parent.name}@current -> {path.name}{was}")
    from qslm.tracking.publish import promote as promote_tracked

    promote_tracked(path, lambda line: click.echo(line, err=True))  # the registry alias


@builds.command("clean")
@click.argument("name", required=False)
@_output_option
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
def builds_clean(name: str | None, output: str | None, dry_run: bool) -> None:
    """Remove the staging folders of interrupted runs (never a build, never a live run)."""
    import socket

    from qslm.builds import BuildStore, lock_staging, pipeline_names, read_run_state

    root = Path(output or "builds")
    for n in [name] if name else pipeline_names(root):
        for staging in BuildStore(root, n).stagings():
            state = read_run_state(staging) or {}
            if state.get("host", socket.gethostname()) != socket.gethostname():
                click.echo(f"kept {n}/{staging.name} (a run on host {state['host']})")
                continue
            lock = lock_staging(staging)
            if lock is None:
                click.echo(f"kept {n}/{staging.name} (a run is using it)")
                continue
            try:
                click.echo(f"{'would remove' if dry_run else 'removed'} {n}/{staging.name}")
                if not dry_run:
                    from qslm.tracking.publish import mark_killed

                    mark_killed(staging, lambda line: click.echo(line, err=True))
                    BuildStore.discard(staging)
            finally:
                lock.close()
