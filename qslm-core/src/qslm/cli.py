"""The ``qslm`` command group. Its commands, the built-in ones included, are added by the
``qslm_register_commands`` hook (:mod:`qslm.commands.plugin`); heavy libraries are imported
inside commands, never at start-up."""

from __future__ import annotations

import os
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


def main() -> None:
    cli(prog_name="qslm")
