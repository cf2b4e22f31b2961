"""``qslm run --resume`` with the unsloth trainer: a run SIGKILLed after a checkpoint goes on
from it and ends with the adapter of an uninterrupted run (the ``lora`` trainer's resume,
through Unsloth's model and adapter)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import qslm

SETTINGS = ("--set", "train.options.checkpoint_every=4", "--set", "pipeline.name=resumable")


def _complete_checkpoint(root: Path) -> bool:
    for cp in (root / "builds" / "resumable").glob(".staging-*/checkpoints/checkpoint-*"):
        try:
            json.loads((cp / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        if (cp / "adapter_model.safetensors").is_file() and (cp / "scheduler.pt").is_file():
            return True
    return False


def test_killed_run_resumes_to_the_uninterrupted_adapter(project):
    reference = qslm(project, "run", "pipeline.toml", *SETTINGS)
    assert reference.returncode == 0, reference.stderr[-4000:]
    v1 = Path(reference.stdout.strip().splitlines()[-1])

    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from qslm.cli import main; main()",
            "run",
            "pipeline.toml",
            *SETTINGS,
        ],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if _complete_checkpoint(project):
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before a checkpoint was seen"

    resumed = qslm(project, "run", "pipeline.toml", "--resume", *SETTINGS)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "training goes on from checkpoint-" in resumed.stderr, resumed.stderr[-3000:]
    build = Path(resumed.stdout.strip().splitlines()[-1])
    assert build != v1

    got = json.loads((build / "metrics.json").read_text())["train"]
    want = json.loads((v1 / "metrics.json").read_text())["train"]
    assert got["train_steps"] == want["train_steps"] == 12
    assert abs(got["train_loss"] - want["train_loss"]) <= 1e-3 * abs(want["train_loss"])
    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["resumed"]["checkpoint"] is not None
    assert manifest["unsloth"]["cpu_fallback"] is True
