"""Shared pieces of the tracking tests: the smallest tracked pipeline, run in-process or as
``qslm run`` in a child process, and an ``mlflow server`` on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

PIPELINE = """
[pipeline]
name = "tracked"
seed = 3
output = "builds"

[data.options]
paths = ["notes.txt"]

[train.options]
max_steps = {steps}
layers = 1
hidden_size = 32
heads = 2
context_length = 32
vocab_size = 300
batch_size = 4
logging_every = 1
checkpoint_every = {checkpoint_every}
threads = 1

[track]
backend = "{backend}"
{extra}
"""


def write_project(
    root: Path,
    *,
    steps: int = 3,
    backend: str = "mlflow",
    extra: str = "",
    checkpoint_every: int = 0,
) -> Path:
    """A folder with ``notes.txt`` and a tracked ``pipeline.toml``; returns the pipeline."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "notes.txt").write_text(
        "\n\n".join(f"Line {i}: tabu search keeps a short memory of flips." for i in range(80))
    )
    pipeline = root / "pipeline.toml"
    pipeline.write_text(
        PIPELINE.format(
            steps=steps, backend=backend, extra=extra, checkpoint_every=checkpoint_every
        )
    )
    return pipeline


def run_in_process(
    pipeline: Path, *overrides: str, resume: bool = False, registry: Any = None
) -> tuple[Path, list[str]]:
    """``qslm run`` without a new interpreter; (build folder, progress lines)."""
    from qslm.config import load_pipeline
    from qslm.pipeline import run_pipeline
    from qslm.plugins import get_registry

    registry = registry or get_registry()
    config = load_pipeline(pipeline, registry, overrides=list(overrides))
    lines: list[str] = []
    build = run_pipeline(config, registry, progress=lines.append, resume=resume)
    return build, lines


def qslm_process(pipeline: Path, *args: str) -> subprocess.Popen:
    """``qslm run PIPELINE ARGS`` in a child process, stderr piped (line by line)."""
    cmd = [sys.executable, "-c", "from qslm.cli import main; main()", "run", str(pipeline), *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        cmd,
        cwd=pipeline.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 240) -> str:
    """Read the child's stderr until a line starts with ``prefix``; returns what was read."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if line.strip().startswith(prefix):
            return seen
    proc.kill()
    raise AssertionError(f"no line starting {prefix!r}; the child printed:\n{seen[-3000:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """``mlflow server`` on a free port of 127.0.0.1 with its own SQLite store and artifact
    folder. Started at once; :meth:`ready` waits for its health endpoint."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = (root / "server.log").open("w")
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "mlflow", "server",
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
                "--artifacts-destination", str(root / "server-artifacts"),
            ],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        self._ready = False

    def ready(self, timeout: float = 240) -> str:
        """The server's URI once it answers ``/health``."""
        deadline = time.monotonic() + timeout
        while not self._ready:
            if self.proc.poll() is not None:
                raise AssertionError(f"mlflow server exited: {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    self._ready = r.status == 200
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("mlflow server did not start in time") from None
                time.sleep(0.5)
        return self.uri

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
