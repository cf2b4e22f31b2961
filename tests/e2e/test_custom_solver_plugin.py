"""The example third-party solver package installs with pip, shows up in `qslm plugins`,
passes its own tests with qslm's conformance kit and works by name in `[select]`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "custom-solver-plugin"


@pytest.fixture(scope="module")
def plugin_env(pip_installed) -> dict[str, str]:
    return pip_installed(PLUGIN)


def test_listed_with_its_distribution(plugin_env):
    result = subprocess.run(
        [sys.executable, "-c", "from qslm.cli import main; main()", "plugins", "--json"],
        capture_output=True,
        text=True,
        env=plugin_env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    [row] = [r for r in rows if r["name"] == "example.greedy"]
    assert (row["kind"], row["distribution"]) == ("qubo_solver", "qslm-example-greedy")


def test_its_own_tests_pass_with_the_kit(plugin_env):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PLUGIN / "tests")],
        capture_output=True,
        text=True,
        env=plugin_env,
        cwd=PLUGIN,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "failed" not in result.stdout
