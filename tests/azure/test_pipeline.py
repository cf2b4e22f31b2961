"""The Azure solvers inside the pipeline: [select] records the job or, when Azure fails, the
fallback that ran instead and why; `qslm validate` shows the cost estimate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qslm.components import Dataset
from qslm.config import ComponentRef, SelectConfig
from qslm.context import RunContext
from qslm.plugins import get_registry
from qslm.stages.select import run_select_stage
from qslm_azure.testing import FAST_OPTIONS

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "examples" / "quickstart" / "corpus"


def select(tmp_path, solvers, progress=None):
    """The [select] stage choosing 4 of 12 records (a 12-variable QUBO)."""
    texts = sorted(p.read_text(encoding="utf-8") for p in CORPUS.glob("*.md"))
    records = [para for t in texts for para in t.split("\n\n") if len(para.split()) > 8][:12]
    lines = [] if progress is None else progress
    ctx = RunContext(config=None, registry=None, build_dir=tmp_path, seed=1, progress=lines.append)

    def ref(name, options):
        spec = get_registry().get("qubo_solver", name)
        cls = spec.load()
        return ComponentRef("select.solver", spec, cls, cls.Options(**options), tmp_path)

    config = SelectConfig(
        size=4,
        solvers=[ref(name, options) for name, options in solvers],
        race=[],
        time_limit=None,
        options={"similarity": "tfidf"},
    )
    data = Dataset(train=[{"text": r} for r in records], validation=[], sha256="0" * 64)
    return run_select_stage(ctx, config, data), ctx.manifest["select"]


def test_select_on_azure_records_the_job_and_streams_its_status(tmp_path, fake):
    lines = []
    options = {**FAST_OPTIONS, "endpoint": fake.url, "maxiter": 20, "shots": 200}
    out, record = select(tmp_path, [("azure.ionq", options)], progress=lines)
    assert len(out.train) == 4 and record["solver"] == "azure.ionq"
    job = record["solver_info"]["job_id"]
    assert job in fake.jobs and record["solver_info"]["job_ids"] == [job]
    assert any(f"job {job}: Succeeded" in line for line in lines)
    written = (tmp_path / "select.json").read_text()
    assert fake.api_key not in written and "sig=" not in written


def test_a_failing_azure_job_falls_back_and_the_record_says_why(tmp_path, fake):
    fake.fail_jobs = True
    options = {**FAST_OPTIONS, "endpoint": fake.url, "maxiter": 20, "shots": 200}
    out, record = select(tmp_path, [("azure.quantinuum", options), ("anneal", {})])
    assert len(out.train) == 4 and record["solver"] == "anneal"
    azure, anneal = record["attempts"]
    assert azure["solver"] == "azure.quantinuum" and azure["status"] == "error"
    assert "ServiceUnavailable" in azure["reason"] and "ended Failed" in azure["reason"]
    [job_id] = fake.jobs
    assert job_id in azure["reason"]
    assert anneal["status"] == "ok"
    saved = json.loads((tmp_path / "select.json").read_text())
    assert saved["attempts"][0]["status"] == "error"


def test_without_credentials_the_fallback_runs_at_once(tmp_path, no_network):
    out, record = select(tmp_path, [("azure.rigetti", {}), ("anneal", {})])
    assert len(out.train) == 4
    assert record["solver"] == "anneal"
    assert record["attempts"][0]["reason"].startswith("MissingCredentials: azure.rigetti")
    assert record["attempts"][0]["wall_s"] < 1.0
    assert no_network == []


PIPELINE = """
[pipeline]
name = "azure-select"

[data]
source = "text"
[data.options]
paths = ["{corpus}/*.md"]

[select]
size = 50
solver = "azure.ionq"
fallback = ["anneal"]
[select.solvers."azure.ionq"]
target = "ionq.qpu.aria-1"
shots = 1000
max_cost = 30.0
"""


def test_validate_shows_the_cost_estimate_without_torch(tmp_path, validate_in_fresh_process):
    path = tmp_path / "pipeline.toml"
    path.write_text(PIPELINE.format(corpus=CORPUS.as_posix()))
    out = validate_in_fresh_process(path, timeout=180)
    assert "exit 0" in out.stdout, out.stdout + out.stderr
    assert "heavy []" in out.stdout
    assert "target: ionq.qpu.aria-1 (QPU" in out.stdout
    assert "cost estimate, complete 4-variable problem:" in out.stdout
    assert "gate shots" in out.stdout and "max_cost $30" in out.stdout
    assert "workspace: no credentials found" in out.stdout


RUN_PIPELINE = """
[pipeline]
name = "azure-run"

[data.options]
paths = ["notes.txt"]

[select]
size = 5
solver = "azure.ionq"
fallback = ["tabu"]

[select.solvers."azure.ionq"]
endpoint = "{endpoint}"
maxiter = 20
shots = 200
poll_interval = 0.02
poll_max_interval = 0.1

[train.options]
max_steps = 2
layers = 1
hidden_size = 32
heads = 2
context_length = 32
vocab_size = 300
batch_size = 4
"""


@pytest.mark.parametrize("fails", [False, True], ids=["job", "fallback"])
def test_qslm_run_records_the_job_or_the_fallback_in_the_build_manifest(tmp_path, fake, fails):
    fake.fail_jobs = fails
    (tmp_path / "notes.txt").write_text(
        "\n\n".join(f"Note {i}: chain {i % 5} broke after {i * 3} anneals." for i in range(14))
    )
    (tmp_path / "pipeline.toml").write_text(RUN_PIPELINE.format(endpoint=fake.url))
    result = subprocess.run(
        [sys.executable, "-c", "from qslm.cli import main; main()", "run", "pipeline.toml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        env={**os.environ, "QDK_PYTHON_TELEMETRY": "none"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    build = Path(result.stdout.strip().splitlines()[-1])
    manifest = (build / "manifest.json").read_text()
    select = json.loads(manifest)["select"]
    [job_id] = fake.jobs
    if fails:
        assert select["solver"] == "tabu"
        assert select["attempts"][0]["solver"] == "azure.ionq"
        assert f"job {job_id} ended Failed" in select["attempts"][0]["reason"]
    else:
        assert select["solver"] == "azure.ionq"
        assert select["solver_info"]["job_id"] == job_id
        assert select["solver_info"]["cost_estimate"]["usd"] == 0.0
        assert f"azure.ionq: job {job_id}: Succeeded" in result.stderr  # the run's progress
    assert fake.api_key not in manifest and fake.api_key not in result.stderr
