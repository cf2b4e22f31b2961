"""``qslm validate`` and ``qslm run``: check a pipeline, or run it and publish a build."""

from __future__ import annotations

from pathlib import Path

import click

from qslm.commands.flags import (
    _force,
    _force_option,
    _load,
    _offline_option,
    _output_option,
    _set_option,
)


@click.command()
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


@click.command()
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
    from qslm.launch import Launch
    from qslm.pipeline import run_pipeline

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
