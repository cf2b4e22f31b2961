"""Options shared by several commands (``--set``, ``--output``, ``--offline``, ``--force``)
and the pipeline loading they lead to."""

from __future__ import annotations

import os

import click

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
