"""Registers the built-in commands through ``qslm_register_commands``, the hook plugins use
for theirs. Each module imports click only; heavy libraries load inside the commands."""

from __future__ import annotations

from typing import Any

from qslm.commands.bench import bench
from qslm.commands.builds import builds
from qslm.commands.data import data_command
from qslm.commands.export import export_command
from qslm.commands.inference import COMMANDS as INFERENCE_COMMANDS
from qslm.commands.plugin_new import plugin_group
from qslm.commands.plugins import describe, plugins
from qslm.commands.run import run, validate
from qslm.commands.solve import solve
from qslm.hookspecs import hookimpl


# tryfirst: the built-ins are in place before any plugin's implementation runs, so a plugin
# can add to a built-in group (``bench``) or replace a command, as when they were hard-wired.
@hookimpl(tryfirst=True)
def qslm_register_commands(cli: Any) -> None:
    for command in (
        plugins,
        describe,
        validate,
        run,
        builds,
        *INFERENCE_COMMANDS,
        data_command,
        export_command,
        solve,
        bench,
        plugin_group,
    ):
        cli.add_command(command)
