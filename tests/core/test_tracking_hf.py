"""TensorBoard, W&B (offline) and trackio through the Hugging Face Trainer's own integrations,
with qslm's stage metrics in the same run; each read back with its library's own reader."""

from __future__ import annotations

import importlib.util
import json
import sqlite3

import pytest
from tracking_support import run_in_process, write_project


def _manifest(build) -> dict:
    return json.loads((build / "manifest.json").read_text())


def test_tensorboard_has_steps_and_stage_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    build, _ = run_in_process(write_project(tmp_path, backend="tensorboard"))
    tracking = _manifest(build)["tracking"]
    assert tracking["tracker"] == "tensorboard" and tracking["status"] == "ok"
    events = EventAccumulator(tracking["log_dir"])
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]  # the Trainer's callback
    [ppl] = events.Scalars("perplexity/perplexity")  # qslm's stage metric
    assert ppl.value == pytest.approx(_manifest(build)["metrics"]["perplexity"]["perplexity"])


def test_wandb_offline_run_needs_no_network(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # any network use would fail
    build, _ = run_in_process(write_project(tmp_path, backend="wandb"))
    tracking = _manifest(build)["tracking"]
    assert tracking["tracker"] == "wandb" and tracking["status"] == "ok", tracking
    assert tracking["mode"] == "offline"
    [log] = (tmp_path / "builds" / "wandb" / "wandb").glob(
        f"offline-run-*-{tracking['run_id']}/*.wandb"
    )
    # wandb 0.31 reads its run files only in its Go core (no Python reader; `wandb sync`
    # needs the service): the keys of the steps and of the stage metrics are in the records
    data = log.read_bytes()
    assert b"train/loss" in data and b"perplexity.perplexity" in data
    assert b"tracked@v1" in data  # the build tag


def test_trackio_has_steps_and_stage_metrics(tmp_path):
    if importlib.util.find_spec("trackio") is None:  # not imported: it reads TRACKIO_DIR once
        pytest.skip("trackio is not installed")
    build, _ = run_in_process(write_project(tmp_path, backend="trackio"))
    tracking = _manifest(build)["tracking"]
    assert tracking["tracker"] == "trackio" and tracking["status"] == "ok", tracking
    assert tracking["dir"] == str(tmp_path / "builds" / "trackio")
    with sqlite3.connect(tmp_path / "builds" / "trackio" / "tracked.db") as db:
        rows = db.execute(
            "SELECT metrics FROM metrics WHERE run_name = ?", (tracking["run_id"],)
        ).fetchall()
    logged = [json.loads(r[0]) for r in rows]
    assert [m["train/global_step"] for m in logged if "train/loss" in m] == [1, 2, 3]
    ppl = _manifest(build)["metrics"]["perplexity"]["perplexity"]
    assert any(m.get("perplexity.perplexity") == pytest.approx(ppl) for m in logged)
