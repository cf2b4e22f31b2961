"""``qslm plugins`` and ``qslm describe``: what is installed, and what a component accepts."""

from __future__ import annotations

import json

import click


@click.command()
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


@click.command()
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
