"""The ``qslm`` command. Heavy libraries are imported inside commands, never at start-up."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from qslm import __version__
from qslm.describe import options_table  # noqa: F401 (its old home)
from qslm.errors import QslmError


def _debug() -> bool:
    return os.environ.get("QSLM_DEBUG", "").lower() not in ("", "0", "false", "no")


class QslmGroup(click.Group):
    """Adds plugin commands on first use and shows expected errors without a traceback."""

    _plugins_loaded = False

    def _load_plugin_commands(self) -> None:
        if QslmGroup._plugins_loaded:
            return
        QslmGroup._plugins_loaded = True
        from qslm.plugins import get_plugin_manager

        try:
            get_plugin_manager().hook.qslm_register_commands(cli=self)
        except QslmError as exc:
            click.echo(f"Error: {exc}", err=True)
            raise SystemExit(exc.exit_code) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except QslmError as exc:
            if _debug():  # the traceback as well, but the same exit code: debug output only
                import traceback

                traceback.print_exc()
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=QslmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="qslm")
def cli() -> None:
    """qslm: build small language models from pluggable classical, simulated-quantum and
    quantum-hardware parts, as versioned, evaluated builds.

    \b
    Start with:  qslm run examples/quickstart/pipeline.toml
    Environment: QSLM_DISABLE_PLUGINS=a,b  QSLM_STRICT_PLUGINS=1  QSLM_DEBUG=1
    """


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def plugins(as_json: bool) -> None:
    """List every registered component and any plugin that failed to load."""
    from qslm.plugins import get_plugin_manager, get_registry

    registry = get_registry()
    pm = get_plugin_manager()
    rows = [spec.as_dict() for spec in registry.all()]
    loaded = []
    for name, (dist, version) in registry.plugins.items():
        plugin = pm.get_plugin(name)
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or []) if plugin else []
        loaded.append(
            {
                "kind": "plugin",
                "name": name,
                "plugin": name,
                "distribution": dist,
                "version": version,
                "hooks": hooks,
            }
        )
    if as_json:
        failed = [{"kind": "failed", "name": f.name, **f.as_dict()} for f in registry.failed]
        click.echo(json.dumps(rows + loaded + failed, indent=2))
        return
    headers = ("kind", "name", "plugin", "distribution", "version")
    table = [headers] + [tuple(r[h] for h in headers) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(headers))]
    for row in table:
        click.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    click.echo("\nplugins:")
    for p in loaded:
        hooks = ", ".join(p["hooks"]) or "no hooks"
        click.echo(f"  {p['name']} ({p['distribution']} {p['version']}): {hooks}")
    for f in registry.failed:
        click.echo(f"failed to load: {f.name} ({f.distribution} {f.version}): {f.error}", err=True)


@cli.command()
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(
        ["data_source", "attention", "qubo_solver", "trainer", "evaluator", "tracker"]
    ),
    help="When NAME is used by several kinds.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the options' JSON schema.")
def describe(name: str, kind: str | None, as_json: bool) -> None:
    """Show a component's documentation and its options (the TOML table it accepts)."""
    from qslm.describe import describe_lines, find_component
    from qslm.plugins import get_registry

    spec = find_component(get_registry(), name, kind)
    cls = spec.load()
    if as_json:
        click.echo(json.dumps(cls.Options.model_json_schema(), indent=2))
        return
    click.echo("\n".join(describe_lines(spec, cls)))


_set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a pipeline key, e.g. --set train.options.max_steps=50 (repeatable).",
)
_offline_option = click.option(
    "--offline",
    is_flag=True,
    help="Never use the network for Hugging Face Hub models and datasets: the local cache "
    "only (sets HF_HUB_OFFLINE=1).",
)
_output_option = click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for builds (default: [pipeline] output, else ./builds).",
)


_force_option = click.option(
    "--force",
    is_flag=True,
    help="Skip the memory and disk checks (when their estimate misjudges this machine).",
)


def _force(force: bool) -> None:
    if force:  # the environment, so that --nproc's training processes inherit it
        from qslm.resources import FORCE_ENV

        os.environ[FORCE_ENV] = "1"


def _load(pipeline: str, overrides: tuple[str, ...], output: str | None):
    from qslm.config import load_pipeline
    from qslm.plugins import get_registry

    registry = get_registry()
    return load_pipeline(pipeline, registry, overrides=list(overrides), output=output), registry


@cli.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@_set_option
@_output_option
@_offline_option
@_force_option
def validate(
    pipeline: str, overrides: tuple[str, ...], output: str | None, offline: bool, force: bool
) -> None:
    """Resolve every component and option of PIPELINE and print the plan; runs nothing."""
    from qslm.pipeline import plan

    _force(force)
    if offline:
        from qslm.hub import go_offline

        go_offline()
    config, _ = _load(pipeline, overrides, output)
    out = config.output or Path.cwd() / "builds"
    click.echo(f"pipeline {config.name!r} (seed {config.seed}) -> {out / config.name}/vN")
    if config.select is not None:
        how = "race" if config.select.race else "fallback in order"
        click.echo(
            f"  select: keep {config.select.size} training records (QUBO with exactly-k; "
            f"solvers: {how})"
        )
    for entry in plan(config):
        click.echo(f"  {entry['key']:<22} {entry['name']}  [{entry['distribution']}]")
        for note in entry["notes"]:
            click.echo(f"  {'':<22}   {note}")
    click.echo("ok")


@cli.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@_set_option
@_output_option
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the newest interrupted run of PIPELINE (same config) from its last "
    "complete checkpoint.",
)
@click.option(
    "--nproc",
    type=int,
    default=None,
    help="Train in N processes under torchrun (DDP: gloo on CPU, nccl on GPUs).",
)
@click.option(
    "--accelerate-config",
    type=click.Path(dir_okay=False),
    default=None,
    help="Launch the training with `accelerate launch --config_file FILE`.",
)
@_offline_option
@_force_option
def run(
    pipeline: str,
    overrides: tuple[str, ...],
    output: str | None,
    resume: bool,
    nproc: int | None,
    accelerate_config: str | None,
    offline: bool,
    force: bool,
) -> None:
    """Run PIPELINE and publish a new build; prints the build's path as the last line."""
    from qslm.pipeline import run_pipeline
    from qslm.train.launch import Launch

    _force(force)
    if offline:
        from qslm.hub import go_offline

        go_offline()  # the environment variable also reaches torchrun's workers

    launch = None
    if nproc is not None or accelerate_config is not None:
        launch = Launch(
            nproc=nproc,
            accelerate_config=Path(accelerate_config) if accelerate_config else None,
            overrides=overrides,
            output=str(Path(output).absolute()) if output else None,
        )
    config, registry = _load(pipeline, overrides, output)
    build = run_pipeline(config, registry, resume=resume, launch=launch)
    click.echo(str(build))


@cli.group()
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
    from qslm.builds import compare_builds, read_manifest, resolve_build

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


def _add_inference_commands() -> None:
    from qslm.inference.cli import COMMANDS  # imports click only; heavy imports in commands

    for command in COMMANDS:
        cli.add_command(command)


_add_inference_commands()

from qslm.commands.data import data_command  # noqa: E402  (imports click only)

cli.add_command(data_command)

from qslm.commands.plugin_new import plugin_group  # noqa: E402  (imports click only)

cli.add_command(plugin_group)


def _add_export_command() -> None:
    from qslm.export.cli import export_command  # imports click only

    cli.add_command(export_command)


_add_export_command()


def main() -> None:
    cli(prog_name="qslm")
