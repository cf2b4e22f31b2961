"""CLI contracts: version, validate without heavy imports, runtime failures exit 1."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from qslm import __version__
from qslm.cli import cli
from qslm.testing import check_listing_is_light

ROOT = Path(__file__).resolve().parents[2]


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_validate_quickstart_imports_no_heavy_library():
    quickstart = str(ROOT / "examples/quickstart/pipeline.toml")
    check_listing_is_light(("validate", quickstart))


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_builds_show_of_a_missing_build_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(cli, ["builds", "show", "nothing@v1", "--output", str(tmp_path)])
    assert result.exit_code == 2
    assert "no builds of 'nothing'" in result.output and "Traceback" not in result.output
