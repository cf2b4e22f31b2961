"""A QPU without credentials falls back to a local solver and the record says why; the CLI
validates and solves with the D-Wave solvers, failing cleanly where it must."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from qslm.cli import cli
from qslm.components import Dataset
from qslm.config import ComponentRef, SelectConfig
from qslm.context import RunContext
from qslm.plugins import get_registry
from qslm.qubo.portfolio import solve_with_fallback
from qslm.stages.select import run_select_stage
from qslm.testing import random_qubo

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "examples" / "quickstart" / "corpus"


def solver(name, **options):
    cls = get_registry().get("qubo_solver", name).load()
    return cls(cls.Options(**options))


def test_portfolio_falls_back_from_the_qpu_to_simulated_annealing(no_network):
    q = random_qubo(30, seed=3)
    started = time.perf_counter()
    result, attempts = solve_with_fallback(
        q, [("dwave.qpu", solver("dwave.qpu")), ("dwave.sa", solver("dwave.sa"))], seed=0
    )
    assert time.perf_counter() - started < 5
    assert result.solver == "dwave.sa"
    first, second = attempts
    assert first["solver"] == "dwave.qpu" and first["status"] == "error"
    assert first["reason"].startswith("MissingCredentials: dwave.qpu: no D-Wave API token")
    assert first["wall_s"] < 1.0
    assert second["solver"] == "dwave.sa" and second["status"] == "ok"
    assert no_network == []


def test_a_too_large_problem_is_recorded_as_such_and_the_next_solver_runs():
    q = random_qubo(24, density=0.2, seed=1)
    result, attempts = solve_with_fallback(
        q,
        [("dwave.exact", solver("dwave.exact")), ("dwave.tabu", solver("dwave.tabu", timeout=10))],
    )
    assert attempts[0]["status"] == "too_large" and result.solver == "dwave.tabu"


def select(tmp_path, solvers):
    texts = sorted(p.read_text(encoding="utf-8") for p in CORPUS.glob("*.md"))
    records = [para for t in texts for para in t.split("\n\n") if len(para.split()) > 8][:40]
    ctx = RunContext(
        config=None, registry=None, build_dir=tmp_path, seed=1, progress=lambda line: None
    )

    def ref(name):
        spec = get_registry().get("qubo_solver", name)
        cls = spec.load()
        return ComponentRef("select.solver", spec, cls, cls.Options(), tmp_path)

    config = SelectConfig(
        size=10,
        solvers=[ref(name) for name in solvers],
        race=[],
        time_limit=None,
        options={"similarity": "tfidf"},
    )
    data = Dataset(train=[{"text": r} for r in records], validation=[], sha256="0" * 64)
    return run_select_stage(ctx, config, data), ctx.manifest["select"]


def test_the_select_stage_records_why_it_fell_back(tmp_path, no_network):
    out, record = select(tmp_path, ["dwave.qpu", "dwave.sa"])
    assert len(out.train) == 10 and record["solver"] == "dwave.sa"
    [qpu, sa] = record["attempts"]
    assert qpu["solver"] == "dwave.qpu" and "DWAVE_API_TOKEN" in qpu["reason"]
    assert sa["status"] == "ok"
    assert json.loads((tmp_path / "select.json").read_text())["attempts"][0]["status"] == "error"


def test_the_select_stage_on_a_mock_qpu_keeps_the_token_out_of_the_record(
    tmp_path, fake_token, qpu_factory, mock_qpu
):
    qpu_factory(mock_qpu("pegasus", [16]))
    out, record = select(tmp_path, ["dwave.qpu"])
    assert len(out.train) == 10
    assert record["attempts"][0]["solver"] == "dwave.qpu"
    assert record["attempts"][0]["status"] in ("ok", "infeasible")
    written = (tmp_path / "select.json").read_text()
    assert fake_token not in written and fake_token[4:] not in written


PIPELINE = """
[pipeline]
name = "dwave-select"

[data]
source = "text"
[data.options]
paths = ["{corpus}/*.md"]

[select]
size = 50
solver = "dwave.qpu"
fallback = ["dwave.sa"]
[select.solvers."dwave.qpu"]
topology = "pegasus"
num_reads = 500
[select.solvers."dwave.sa"]
num_reads = 16
"""


def test_validate_states_the_target_qubits_and_credentials_without_torch(
    tmp_path, validate_in_fresh_process
):
    path = tmp_path / "pipeline.toml"
    path.write_text(PIPELINE.format(corpus=CORPUS.as_posix()))
    out = validate_in_fresh_process(path, timeout=120)
    assert "exit 0" in out.stdout, out.stdout + out.stderr
    assert "heavy []" in out.stdout
    assert "Advantage (pegasus 16): 5640 qubits" in out.stdout
    assert "credentials: none found" in out.stdout and "DWAVE_API_TOKEN" in out.stdout
    assert "dwave-samplers SimulatedAnnealingSampler: 16 reads" in out.stdout


def test_validate_rejects_a_misspelt_option_naming_the_key(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_text(
        PIPELINE.format(corpus=CORPUS.as_posix()).replace("num_reads = 500", "num_read = 500")
    )
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert "select.solvers.dwave.qpu.num_read: unknown key; did you mean 'num_reads'?" in (
        result.output
    )


def test_solve_with_dwave_sa_finds_the_best_known_value(shared_dir):
    instance = shared_dir / "benchmarks/qubo/bqp50_1.qubo"
    result = CliRunner().invoke(
        cli, ["solve", str(instance), "--maximize", "--solver", "dwave.sa", "--seed", "0", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["energy"] == pytest.approx(2098) and out["seed"] == 0
    assert out["info"]["library"].startswith("dwave-samplers")


def test_solve_on_the_qpu_without_credentials_is_a_clean_usage_error(tmp_path):
    path = tmp_path / "tiny.qubo"
    path.write_text("p qubo 0 2 2 1\n0 0 -1\n1 1 -1\n0 1 2\n")
    started = time.perf_counter()
    result = CliRunner().invoke(cli, ["solve", str(path), "--solver", "dwave.qpu"])
    assert time.perf_counter() - started < 5
    assert result.exit_code == 2
    assert "no D-Wave API token found" in result.output and "Traceback" not in result.output


def test_a_dead_service_is_a_clean_runtime_error_without_the_token(
    tmp_path, fake_token, monkeypatch
):
    monkeypatch.setenv("DWAVE_API_ENDPOINT", "http://127.0.0.1:9/sapi/v2/")  # nothing there
    path = tmp_path / "tiny.qubo"
    path.write_text("p qubo 0 2 2 1\n0 0 -1\n1 1 -1\n0 1 2\n")
    result = CliRunner().invoke(
        cli,
        [
            "solve",
            str(path),
            "--solver",
            "dwave.qpu",
            "--option",
            "retries=1",
            "--option",
            "retry_backoff=0.05",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "could not connect to the QPU solver" in result.output
    assert "Traceback" not in result.output and fake_token not in result.output
