"""Checks for any plugin package: it is found through its entry point, and listing plugins
imports none of the heavy libraries (the promise that keeps ``qslm --help`` fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

HEAVY_MODULES = (
    "torch",
    "transformers",
    "tokenizers",
    "qiskit",
    "dwave",
    "dimod",
    "azure.quantum",
    "unsloth",
)


def check_plugin_listed(name: str, distribution: str) -> dict[str, Any]:
    """``qslm plugins --json`` lists the plugin ``name`` from ``distribution`` and no plugin
    failed to load. Returns the plugin's row."""
    from click.testing import CliRunner

    from qslm.cli import cli

    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    failed = [r for r in rows if r["kind"] == "failed"]
    assert not failed, f"plugins failed to load: {failed}"
    found = [r for r in rows if r["kind"] == "plugin" and r["name"] == name]
    assert found, f"plugin {name!r} is not listed; is its entry point in the group 'qslm'?"
    assert found[0]["distribution"] == distribution, found[0]
    return found[0]


def check_listing_is_light(
    args: tuple[str, ...] = ("plugins",), heavy: tuple[str, ...] = HEAVY_MODULES
) -> None:
    """Running ``qslm ARGS`` in a fresh interpreter imports none of ``heavy``."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from qslm.cli import cli\n"
        f"r = CliRunner().invoke(cli, {list(args)!r})\n"
        "assert r.exit_code == 0, r.output\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.strip() == "[]", f"qslm {' '.join(args)} imported {out.stdout.strip()}"
