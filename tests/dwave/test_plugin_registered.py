"""qslm-backend-dwave installs beside qslm-core alone and registers through its entry point."""

from __future__ import annotations

import json

from click.testing import CliRunner

from qslm.cli import cli


def test_plugin_is_found_through_its_entry_point():
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    [row] = [r for r in rows if r["kind"] == "plugin" and r["name"] == "dwave"]
    assert row["distribution"] == "qslm-backend-dwave"
    assert not [r for r in rows if r["kind"] == "failed"]


def test_listing_does_not_import_the_backend_sdk():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from qslm.cli import cli\n"
        "assert CliRunner().invoke(cli, ['plugins']).exit_code == 0\n"
        "print(sorted(m for m in ('torch', 'transformers', 'qiskit', 'dwave', 'dimod',\n"
        "                         'azure.quantum', 'unsloth') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
