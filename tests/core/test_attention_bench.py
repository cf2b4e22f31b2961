"""`qslm bench attention`: JSON fields, the theory beside naive's error, argument errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from qslm.cli import cli

pytest.importorskip("torch")

FIELDS = {"strategy", "seq_len", "samples", "rel_error", "n_eff", "ms_per_call"}


def test_json_rows_for_every_strategy_and_size(tmp_path):
    args = ["bench", "attention", "--seq-lens", "16,32", "--samples", "4", "--repeats", "1"]
    result = CliRunner().invoke(cli, [*args, "--heads", "1", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert len(rows) == 5 * 2
    assert all(FIELDS | {"exact_ms_per_call", "naive_theory"} <= set(r) for r in rows)
    naive = [r for r in rows if r["strategy"] == "naive"]
    assert all(0.5 < r["rel_error"] / r["naive_theory"] < 1.5 for r in naive)


def test_unknown_strategy_is_a_usage_error():
    result = CliRunner().invoke(cli, ["bench", "attention", "--strategies", "magic"])
    assert result.exit_code == 2 and "magic" in result.output


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "a.png"
    args = ["bench", "attention", "--seq-lens", "16", "--samples", "2,4", "--repeats", "1"]
    result = CliRunner().invoke(cli, [*args, "--strategies", "naive,hybrid", "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1000
