"""``[track]`` without a tracking service: configuration errors, credentials kept out of
everything written, the tracker plugin kind, and a tracker that fails mid-run (disk full)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from tracking_support import run_in_process, write_project

from qslm.builds import redact
from qslm.cli import cli
from qslm.hookspecs import hookimpl
from qslm.plugins import collect, make_plugin_manager
from qslm.secrets import strip_credentials
from qslm.tracking import Tracker


def _validate(pipeline, *args: str):
    return CliRunner().invoke(cli, ["validate", str(pipeline), *args])


def test_unknown_tracker_suggests_the_name(tmp_path):
    result = _validate(write_project(tmp_path), "--set", "track.backend=mlfow")
    assert result.exit_code == 2
    assert "track.backend: unknown tracker 'mlfow'; did you mean 'mlflow'?" in result.output
    assert "Traceback" not in result.output


def test_unknown_tracker_option_is_named(tmp_path):
    result = _validate(write_project(tmp_path), "--set", "track.options.tracking_url=x")
    assert result.exit_code == 2
    assert "track.options.tracking_url: unknown key; did you mean 'tracking_uri'?" in result.output


def test_missing_library_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    result = _validate(write_project(tmp_path))
    assert result.exit_code == 2
    assert "pip install 'qslm-core[mlflow]'" in result.output
    # `qslm run` stops before making any folder
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "pipeline.toml")])
    assert result.exit_code == 2 and not (tmp_path / "builds").exists()


def test_credentials_are_stripped_from_uris():
    uri = "https://alice:p%40ss@mlflow.example.com:8443/path?token=abc123&x=1"
    assert strip_credentials(uri) == "https://***@mlflow.example.com:8443/path?token=***&x=1"
    assert (
        strip_credentials("error talking to http://u:pw@h/api")
        == "error talking to http://***@h/api"
    )
    config = {"track": {"options": {"tracking_uri": "http://u:pw@127.0.0.1:5000"}}}
    assert redact(config)["track"]["options"]["tracking_uri"] == "http://***@127.0.0.1:5000"


def test_split_credentials_moves_them_out_of_the_uri():
    from qslm.tracking.mlflow_tracker import split_credentials

    assert split_credentials("http://alice:p%40ss@127.0.0.1:5000/x") == (
        "http://127.0.0.1:5000/x",
        "alice",
        "p@ss",
    )
    assert split_credentials("sqlite:///tmp/mlflow.db") == ("sqlite:///tmp/mlflow.db", None, None)


def test_listing_trackers_imports_no_tracking_library():
    code = (
        "import sys; from qslm.cli import main; sys.argv = ['qslm', 'plugins']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('mlflow', 'wandb', 'tensorboard', 'trackio', 'torch') "
        "if m in sys.modules]\nprint('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "tracker" in out.stdout and "mlflow" in out.stdout
    assert "HEAVY []" in out.stdout, out.stdout[-500:] + out.stderr[-2000:]


class DiskFullTracker(Tracker):
    """A third-party tracker (registered by a plugin) whose disk fills after two steps."""

    calls: list = []

    def start(self, ctx, run_id):
        return "local-1"

    def log_metrics(self, metrics, step=None):
        DiskFullTracker.calls.append(step)
        if len(DiskFullTracker.calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")

    def end(self, status):
        DiskFullTracker.calls.append(status)


class _Plugin:
    @hookimpl
    def qslm_register_trackers(self, register):
        register("diskfull", DiskFullTracker, summary="fills its disk")


def test_a_failing_tracker_warns_once_and_the_build_goes_on(tmp_path):
    pm, registry = make_plugin_manager([_Plugin()], entry_points=False)
    registry = collect(pm, registry)
    assert registry.get("tracker", "diskfull").target is DiskFullTracker
    build, lines = run_in_process(write_project(tmp_path, backend="diskfull"), registry=registry)
    warnings = [line for line in lines if "tracking with diskfull failed" in line]
    assert len(warnings) == 1 and "No space left on device" in warnings[0]
    assert DiskFullTracker.calls == [1, 2, 3]  # nothing more after the failure, not even end
    tracking = json.loads((build / "manifest.json").read_text())["tracking"]
    assert tracking["status"] == "failed" and tracking["run_id"] == "local-1"
    assert "No space left on device" in tracking["error"]
    assert (build / "metrics.json").is_file() and (build / "model").is_dir()


@pytest.mark.parametrize("backend", ["mlflow", "tensorboard", "wandb", "trackio"])
def test_each_builtin_tracker_is_registered(backend):
    from qslm.plugins import get_registry

    spec = get_registry().get("tracker", backend)
    assert spec.distribution == "qslm-core" and issubclass(spec.load(), Tracker)
