"""A run killed at any moment leaves no new version and does not touch earlier builds."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PIPELINE = """
[pipeline]
name = "killme"
seed = 3

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
"""


def _tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["[train]", "[evaluate]"])
def test_sigkill_leaves_no_half_build(tmp_path, kill_at):
    (tmp_path / "notes.txt").write_text(
        "\n\n".join(f"Line {i}: tabu search keeps a short memory of flips." for i in range(80))
    )
    cmd = [
        sys.executable,
        "-c",
        "from qslm.cli import main; main()",
        "run",
        str(tmp_path / "pipeline.toml"),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    (tmp_path / "pipeline.toml").write_text(PIPELINE.format(steps=2))
    first = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    v1 = tmp_path / "builds" / "killme" / "v1"
    before = _tree_digest(v1)

    # killed as the stage starts: a long training to be inside of, a short one before [evaluate]
    steps = 400 if kill_at == "[train]" else 20
    (tmp_path / "pipeline.toml").write_text(PIPELINE.format(steps=steps))
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 600  # a deadline only: 5 s idle, 240 s on a loaded CI
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if line.startswith(kill_at):
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert kill_at in seen, seen[-2000:]

    builds = tmp_path / "builds" / "killme"
    versions = sorted(p.name for p in builds.iterdir() if not p.name.startswith("."))
    assert versions == ["v1"]
    assert _tree_digest(v1) == before
    # the next run still gets the next number and a complete build
    (tmp_path / "pipeline.toml").write_text(PIPELINE.format(steps=2))
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.strip().splitlines()[-1].endswith("v2")
