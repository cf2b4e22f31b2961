"""MLflow tracking, checked with MlflowClient: the local SQLite store and a real
``mlflow server`` on 127.0.0.1, FAILED / KILLED runs, --resume after SIGKILL, builds clean and
the registry alias that ``qslm builds promote`` moves."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from tracking_support import (
    MlflowServer,
    free_port,
    qslm_process,
    run_in_process,
    wait_for_line,
    write_project,
)

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402

from qslm.cli import cli  # noqa: E402
from qslm.components import Evaluator  # noqa: E402
from qslm.hookspecs import hookimpl  # noqa: E402
from qslm.plugins import collect, make_plugin_manager  # noqa: E402

SECRET = "s3cret-Pa55"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real ``mlflow server``; it starts with the module and is awaited where used."""
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    yield srv
    srv.stop()


def _manifest(build) -> dict:
    return json.loads((build / "manifest.json").read_text())


def _check_run(client: MlflowClient, build) -> None:
    """What a finished tracked build shows in MLflow."""
    manifest = _manifest(build)
    run = client.get_run(manifest["tracking"]["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"tracked@{build.name}"
    params = run.data.params
    assert params["train.options.max_steps"] == "3"
    assert params["pipeline.name"] == "tracked"
    assert params["track.backend"] == "mlflow"
    history = client.get_metric_history(run.info.run_id, "train.loss")
    assert [m.step for m in history] == [1, 2, 3]
    logged = [e["loss"] for e in map(json.loads, (build / "train_log.jsonl").open()) if
              e.get("event") == "train"]  # fmt: skip
    assert [m.value for m in history] == pytest.approx(logged)
    perplexity = manifest["metrics"]["perplexity"]["perplexity"]
    assert run.data.metrics["perplexity.perplexity"] == pytest.approx(perplexity)
    tags = run.data.tags
    assert tags["qslm.build"] == f"tracked@{build.name}"
    assert tags["qslm.data_sha256"] == manifest["data"]["sha256"]
    assert tags["qslm.version"] == manifest["versions"]["qslm-core"]
    names = {a.path for a in client.list_artifacts(run.info.run_id, "build")}
    assert {"build/manifest.json", "build/metrics.json", "build/report.md"} <= names
    local = client.download_artifacts(run.info.run_id, "build/manifest.json")
    assert json.loads(Path(local).read_text()) == manifest  # the final manifest, tracking key too


def test_local_store_records_the_run(tmp_path, server):
    pipeline = write_project(tmp_path, extra="[track.options]\nlog_weights = true\n")
    build, lines = run_in_process(pipeline)
    tracking = _manifest(build)["tracking"]
    store = tmp_path / "builds" / "mlflow.db"
    assert store.is_file()
    assert tracking["tracker"] == "mlflow" and tracking["status"] == "ok"
    assert tracking["tracking_uri"] == f"sqlite:///{store}"
    assert any(tracking["run_id"] in line for line in lines)
    client = MlflowClient(tracking["tracking_uri"])
    _check_run(client, build)
    weights = {a.path for a in client.list_artifacts(tracking["run_id"], "build/model")}
    assert "build/model/model.safetensors" in weights  # log_weights = true
    assert not list((tmp_path / "builds" / "tracked").glob(".staging-*"))


def test_server_run_registry_and_promote(tmp_path, server):
    uri = server.ready()
    with_secret = uri.replace("http://", f"http://alice:{SECRET}@")
    extra = (
        f'[track.options]\ntracking_uri = "{with_secret}"\nregister_model = "tiny-lm"\n'
        '[select]\nsize = 40\nsolver = "tabu"\n[select.options]\nsimilarity = "tfidf"\n'
    )
    pipeline = write_project(tmp_path, extra=extra)
    v1, lines1 = run_in_process(pipeline)
    v2, lines2 = run_in_process(pipeline)
    client = MlflowClient(uri)
    for build in (v1, v2):
        _check_run(client, build)
    manifest = _manifest(v2)
    assert manifest["tracking"]["tracking_uri"] == uri  # the credentials are gone
    run = client.get_run(manifest["tracking"]["run_id"])
    assert run.data.metrics["select.objective"] == pytest.approx(manifest["select"]["objective"])
    assert run.data.tags["qslm.select.solver"] == "tabu"
    assert manifest["tracking"]["registry"] == {"model": "tiny-lm", "version": "2",
                                                "alias": "champion"}  # fmt: skip
    version = client.get_model_version("tiny-lm", "2")
    assert version.run_id == run.info.run_id and version.tags["qslm.build"] == "tracked@v2"
    # the secret is nowhere: not in the manifests, the run state, the params or the output
    seen = "\n".join(lines1 + lines2) + json.dumps(run.data.params)
    seen += (v1 / "manifest.json").read_text() + manifest.__repr__()
    assert SECRET not in seen

    output = str(tmp_path / "builds")
    for target, expected in (("v1", "1"), ("v2", "2"), ("v1", "1")):  # promote, then roll back
        result = CliRunner().invoke(cli, ["builds", "promote", f"tracked@{target}", "-o", output])
        assert result.exit_code == 0, result.output
        assert client.get_model_version_by_alias("tiny-lm", "champion").version == expected
        assert f"tiny-lm@champion -> version {expected}" in result.output


class _CrashingEvaluator(Evaluator):
    def evaluate(self, ctx, artifact, data):
        raise RuntimeError("the evaluator crashed")


class _CrashPlugin:
    @hookimpl
    def qslm_register_evaluators(self, register):
        register("crash", _CrashingEvaluator)


def test_failed_run_is_failed(tmp_path, server):
    pm, registry = make_plugin_manager([_CrashPlugin()], entry_points=False)
    pipeline = write_project(tmp_path, extra="[evaluate.crash]\n")
    with pytest.raises(RuntimeError, match="the evaluator crashed"):
        run_in_process(pipeline, registry=collect(pm, registry))
    client = MlflowClient(f"sqlite:///{tmp_path / 'builds' / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])
    assert run.info.status == "FAILED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train.loss")] == [1, 2, 3]
    assert not (tmp_path / "builds" / "tracked" / "v1").exists()


def test_unreachable_server_warns_once_and_the_build_goes_on(tmp_path, server):
    from qslm.config import load_pipeline
    from qslm.pipeline import run_pipeline
    from qslm.plugins import get_registry

    dead = f"http://bob:{SECRET}@127.0.0.1:{free_port()}"
    pipeline = write_project(tmp_path, extra=f'[track.options]\ntracking_uri = "{dead}"\n')
    config = load_pipeline(pipeline, get_registry())
    lines: list[tuple[float, str]] = []
    started = time.monotonic()
    build = run_pipeline(
        config, get_registry(), progress=lambda m: lines.append((time.monotonic(), m))
    )
    warnings = [(t, m) for t, m in lines if "tracking with mlflow failed" in m]
    assert len(warnings) == 1, lines
    # MLflow's own retries (7, backoff factor 2) would wait minutes; qslm's settings do not
    assert warnings[0][0] - started < 30
    tracking = _manifest(build)["tracking"]
    assert tracking["status"] == "failed" and tracking["run_id"] is None
    assert "start" in tracking["error"]
    assert SECRET not in "\n".join(m for _, m in lines) + (build / "manifest.json").read_text()
    assert (build / "metrics.json").is_file()


def test_sigterm_ends_the_run_killed(tmp_path, server):
    from qslm.config import load_pipeline
    from qslm.pipeline import run_pipeline
    from qslm.plugins import get_registry

    def progress(line: str) -> None:  # a real SIGTERM to this process, mid-training
        if line.strip().startswith("step 2/"):
            os.kill(os.getpid(), signal.SIGTERM)

    config = load_pipeline(write_project(tmp_path, steps=400), get_registry())
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(config, get_registry(), progress=progress)
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is given back
    client = MlflowClient(f"sqlite:///{tmp_path / 'builds' / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])
    assert run.info.status == "KILLED"
    assert len(client.get_metric_history(run.info.run_id, "train.loss")) == 2
    assert not list((tmp_path / "builds" / "tracked").glob("v*"))


def test_sigkilled_run_is_continued_by_resume(tmp_path, server):
    pipeline = write_project(tmp_path, steps=6, checkpoint_every=2)
    proc = qslm_process(pipeline)
    seen = wait_for_line(proc, "step 3/")  # checkpoint-2 is complete once step 3 is logged
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    run_id = seen.split("tracking: mlflow run ")[1].split()[0]
    client = MlflowClient(f"sqlite:///{tmp_path / 'builds' / 'mlflow.db'}")
    assert client.get_run(run_id).info.status == "RUNNING"  # nothing could end it

    build, lines = run_in_process(pipeline, resume=True)
    assert _manifest(build)["tracking"]["run_id"] == run_id
    assert any(f"run {run_id} continues" in line for line in lines)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["qslm.build"] == "tracked@v1"
    steps = {m.step for m in client.get_metric_history(run_id, "train.loss")}
    assert {1, 2, 3, 6} <= steps
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_builds_clean_marks_a_sigkilled_run_killed(tmp_path, server):
    # What a SIGKILL leaves, made in-process: a staging folder with its run state, an open
    # MLflow run, and no process holding the lock.
    from qslm.builds import BuildStore, lock_staging, write_run_state
    from qslm.config import load_pipeline
    from qslm.context import RunContext
    from qslm.plugins import get_registry
    from qslm.tracking import Tracking

    config = load_pipeline(write_project(tmp_path), get_registry())
    staging = BuildStore(tmp_path / "builds", "tracked").create_staging()
    write_run_state(staging, name="tracked", pipeline=config.path, raw=config.raw)
    ctx = RunContext(config=config, registry=get_registry(), build_dir=staging, seed=0)
    tracking = Tracking.for_config(config, lambda line: None)
    tracking.start(ctx)
    tracking.close()
    lock_staging(staging).close()
    client = MlflowClient(f"sqlite:///{tmp_path / 'builds' / 'mlflow.db'}")
    assert client.get_run(tracking.run_id).info.status == "RUNNING"

    result = CliRunner().invoke(cli, ["builds", "clean", "-o", str(tmp_path / "builds")])
    assert result.exit_code == 0, result.output
    assert f"run {tracking.run_id} marked KILLED" in result.output
    assert client.get_run(tracking.run_id).info.status == "KILLED"
    assert not staging.exists()
