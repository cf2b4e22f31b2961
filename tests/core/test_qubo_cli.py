"""``qslm solve`` and ``qslm bench solvers`` through the real command group."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from qslm.bench.best_known import parse_markdown_best_known
from qslm.bench.solvers import tts
from qslm.cli import cli
from qslm.qubo.io import read_qubo, write_json, write_qubo
from qslm.testing import all_assignments, random_qubo


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def bqp50_1(shared_dir):
    path = shared_dir / "benchmarks" / "qubo" / "bqp50_1.qubo"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    return path


def test_solve_json_maximize_gives_the_file_objective(runner, bqp50_1):
    res = runner.invoke(cli, ["solve", str(bqp50_1), "--maximize", "--seed", "0", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["solver"] == "anneal" and out["sense"] == "max"
    assert out["energy"] == 2098 and out["feasible"] is None and out["wall_s"] > 0
    assert read_qubo(bqp50_1).energy(out["sample"]) == 2098  # the file's objective, as written


def test_solve_minimises_by_default_and_takes_options(runner, tmp_path):
    q = random_qubo(12, seed=3, sense="min")
    write_qubo(q.with_sense("min"), tmp_path / "p.qubo")
    res = runner.invoke(
        cli,
        ["solve", str(tmp_path / "p.qubo"), "--solver", "exact", "--option", "keep=3", "--json"],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["energy"] == pytest.approx(q.energies(all_assignments(12)).min())


def test_solve_reads_json_with_labels(runner, tmp_path):
    q = random_qubo(6, seed=1, labels=list("abcdef"))
    write_json(q, tmp_path / "p.json")
    res = runner.invoke(cli, ["solve", str(tmp_path / "p.json"), "--solver", "tabu", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["labels"] == list("abcdef")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--option", "num_reads=abc"], '--option: num_reads: expected an integer, got "abc"'),
        (["--option", "num_read=4"], "did you mean 'num_reads'?"),
        (["--option", "oops"], "expected KEY=VALUE"),
        (["--solver", "anneel"], "did you mean 'anneal'?"),
        (["--solver", "exact"], "limit of 26"),
        (["--timeout", "-1"], "--timeout: expected positive seconds"),
    ],
)
def test_solve_errors_are_one_clean_message(runner, bqp50_1, args, message):
    res = runner.invoke(cli, ["solve", str(bqp50_1), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output


def test_malformed_file_exits_2_with_line(runner, tmp_path):
    (tmp_path / "bad.qubo").write_text("p qubo 0 2 1 0\n0 5 1.0\n")
    res = runner.invoke(cli, ["solve", str(tmp_path / "bad.qubo")])
    assert res.exit_code == 2
    assert "bad.qubo: line 2: index 5 out of range (the header says 2 nodes" in res.output


def test_bench_solvers_json_uses_the_readme_table(runner, tmp_path):
    for k in (1, 2):
        write_qubo(random_qubo(8, seed=k, sense="max"), tmp_path / f"toy_{k}.qubo")
    from qslm.qubo.exact import ExactSolver

    best = [ExactSolver().solve(read_qubo(tmp_path / f"toy_{k}.qubo")).best_energy for k in (1, 2)]
    (tmp_path / "README.md").write_text(
        "## Best-known values (maximum)\n| set | 1 | 2 |\n|---|---|---|\n"
        f"| toy | {best[0]} | {best[1] + 1} |\n"
    )
    res = runner.invoke(
        cli,
        [
            "bench",
            "solvers",
            "--instances",
            str(tmp_path / "toy_*.qubo"),
            "--solvers",
            "exact,anneal",
            "--repeats",
            "2",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["sense"] == "max"
    rows = {(r["instance"], r["solver"]): r for r in out["rows"]}
    assert rows["toy_1", "exact"]["success"] == 1 and rows["toy_1", "exact"]["gap"] == 0
    # An unreachable best-known value: never reached, TTS infinite (null in JSON).
    assert rows["toy_2", "exact"]["success"] == 0 and rows["toy_2", "exact"]["tts_s"] is None
    assert rows["toy_2", "exact"]["gap"] > 0
    # exact proved the optimum: the gap to it is 0 though the best-known value is missed.
    assert rows["toy_2", "exact"]["gap_to_optimum"] == 0
    anneal = rows["toy_2", "anneal"]
    assert anneal["gap_to_optimum"] == pytest.approx(
        (best[1] - anneal["best"]) / abs(best[1]), abs=1e-12
    )


def test_bench_refuses_the_wrong_sense(runner, bqp50_1):
    res = runner.invoke(cli, ["bench", "solvers", "--instances", str(bqp50_1), "--minimize"])
    assert res.exit_code == 2 and "pass --maximize" in res.output


def test_tts_formula():
    assert tts(2.0, 1.0) == 2.0
    assert tts(2.0, 0.0) == float("inf")
    assert tts(1.0, 0.5) == pytest.approx(np.log(0.01) / np.log(0.5))


def test_markdown_best_known_table():
    values, sense = parse_markdown_best_known(
        "# x\n## Best-known values (maximum)\n| set | 1 | 2 |\n|---|---|---|\n"
        "| bqp50 | 2098 | 3702 |\n\n| instance | value |\n|---|---|\n| other | -5 |\n"
    )
    assert values == {"bqp50_1": 2098, "bqp50_2": 3702, "other": -5}
    assert sense == "max"
