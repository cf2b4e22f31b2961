"""CLI contracts: version, validate without heavy imports, runtime failures exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from qslm import __version__
from qslm.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_validate_quickstart_imports_no_heavy_library():
    quickstart = str(ROOT / "examples/quickstart/pipeline.toml")
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from qslm.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['validate', {quickstart!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('torch', 'transformers', 'tokenizers', 'qiskit', 'dwave',\n"
        "                         'dimod', 'safetensors', 'accelerate') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.strip() == "[]"


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_builds_show_of_a_missing_build_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(cli, ["builds", "show", "nothing@v1", "--output", str(tmp_path)])
    assert result.exit_code == 2
    assert "no builds of 'nothing'" in result.output and "Traceback" not in result.output
