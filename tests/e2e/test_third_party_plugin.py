"""A third-party plugin package, pip-installed, shows up in `qslm plugins --json` and works by
name in a pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "wordcount-plugin"


@pytest.fixture(scope="module")
def plugin_env(pip_installed) -> dict[str, str]:
    return pip_installed(PLUGIN)


def qslm(env, *args, cwd=None):
    return subprocess.run(
        [sys.executable, "-c", "from qslm.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def test_installed_plugin_is_listed(plugin_env):
    result = qslm(plugin_env, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    [row] = [r for r in rows if r["name"] == "wordcount" and r["kind"] == "evaluator"]
    assert row["plugin"] == "wordcount"
    assert row["distribution"] == "qslm-wordcount"
    assert row["version"] == "0.1.0"


def test_installed_plugin_is_usable_by_name(plugin_env, tmp_path):
    (tmp_path / "notes.txt").write_text(
        "\n\n".join(f"Note {i}: the annealer found state {i % 7} again." for i in range(60))
    )
    (tmp_path / "pipeline.toml").write_text(
        """
[pipeline]
name = "plugged"

[data.options]
paths = ["notes.txt"]
validation_fraction = 0.2

[train.options]
max_steps = 3
layers = 1
hidden_size = 32
heads = 2
context_length = 32
vocab_size = 300
batch_size = 4

[evaluate.wordcount]
lowercase = false
"""
    )
    bad = qslm(
        plugin_env,
        "validate",
        str(tmp_path / "pipeline.toml"),
        "--set",
        "evaluate.wordcount.lowercas=1",
    )
    assert bad.returncode == 2 and "did you mean 'lowercase'" in bad.stderr
    result = qslm(plugin_env, "run", str(tmp_path / "pipeline.toml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    build = Path(result.stdout.strip().splitlines()[-1])
    metrics = json.loads((build / "metrics.json").read_text())
    assert metrics["wordcount"]["words"] > 0
    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["components"]["evaluate.wordcount"]["distribution"] == "qslm-wordcount"
    assert manifest["versions"]["plugins"]["wordcount"]["distribution"] == "qslm-wordcount"
