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


def test_usable_by_name_in_a_pipeline(plugin_env, tmp_path):
    (tmp_path / "notes.txt").write_text(
        "\n\n".join(f"Note {i}: chain {i % 5} broke after {i * 3} anneals." for i in range(40))
    )
    (tmp_path / "pipeline.toml").write_text(
        """
[pipeline]
name = "greedy-select"

[data.options]
paths = ["notes.txt"]

[select]
size = 20
solver = "example.greedy"
fallback = ["tabu"]

[select.solvers."example.greedy"]
restarts = 8

[train.options]
max_steps = 2
layers = 1
hidden_size = 32
heads = 2
context_length = 32
vocab_size = 300
batch_size = 4
"""
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from qslm.cli import main; main()",
            "run",
            str(tmp_path / "pipeline.toml"),
        ],
        capture_output=True,
        text=True,
        env=plugin_env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    build = Path(result.stdout.strip().splitlines()[-1])
    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["select"]["solver"] == "example.greedy"
    assert manifest["select"]["k"] == 20
    assert manifest["components"]["select.solver"]["distribution"] == "qslm-example-greedy"
    assert manifest["data"]["train_records"] > 20
