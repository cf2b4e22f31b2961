"""``qslm run --nproc N``: training in N processes under torchrun (gloo on the CPU) follows the
loss curve of one process with the same global batch; accelerate configs pass through."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PIPELINE = """
[pipeline]
name = "ddp"
seed = 5

[data.options]
paths = ["notes.txt"]

[train.options]
max_steps = 10
layers = 1
hidden_size = 32
heads = 2
context_length = 16
vocab_size = 300
batch_size = 8
dropout = 0.0
logging_every = 1
threads = 1
"""
ACCELERATE_CONFIG = """
compute_environment: LOCAL_MACHINE
distributed_type: MULTI_GPU
num_machines: 1
num_processes: 2
machine_rank: 0
mixed_precision: 'no'
use_cpu: false
"""


def _qslm(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", "from qslm.cli import main; main()", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
    )


def _losses(build: Path) -> list[tuple[int, float]]:
    lines = (build / "train_log.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    return [(e["step"], e["loss"]) for e in events if e["event"] == "train"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("nproc")
    (root / "notes.txt").write_text(
        "\n\n".join(
            f"Line {i}: the gradient of rank {i % 3} is averaged with the others' ({i % 5})."
            for i in range(120)
        )
    )
    (root / "pipeline.toml").write_text(PIPELINE)
    one = _qslm(root, "run", "pipeline.toml")
    assert one.returncode == 0, one.stderr[-3000:]
    return root, Path(one.stdout.strip().splitlines()[-1])


def _same_training(single: Path, multi: Path) -> None:
    from safetensors.torch import load_file
    from torch.testing import assert_close

    expected, got = _losses(single), _losses(multi)
    assert [s for s, _ in got] == [s for s, _ in expected] == list(range(1, 11))
    # the same global batches (accelerate shards the one seeded permutation between the ranks)
    # and gradients averaged by DDP: equal up to the order of float additions
    for (step, a), (_, b) in zip(expected, got, strict=True):
        assert b == pytest.approx(a, rel=1e-4), f"step {step}: {a} (1 process) vs {b}"
    # the tokenizer is trained in every rank: deterministic, so the same in all of them
    tok = "model/tokenizer.json"
    assert (single / tok).read_bytes() == (multi / tok).read_bytes()
    assert_close(
        load_file(multi / "model" / "model.safetensors"),
        load_file(single / "model" / "model.safetensors"),
        rtol=1e-4,
        atol=1e-5,
    )
    assert not (multi / "dist").exists()


@pytest.fixture(scope="module")
def two_processes(project):
    root, _ = project
    two = _qslm(root, "run", "pipeline.toml", "--nproc", "2", "--set", "train.options.batch_size=4")
    assert two.returncode == 0, two.stderr[-3000:]
    return two


def test_two_processes_follow_the_one_process_loss_curve(project, two_processes):
    _, single = project
    two = two_processes
    multi = Path(two.stdout.strip().splitlines()[-1])
    assert "launching the training (torchrun, 2 processes)" in two.stderr
    assert two.stderr.count("  step 10/10") == 1, "progress must come from rank 0 only"
    _same_training(single, multi)
    manifest = json.loads((multi / "manifest.json").read_text())
    assert manifest["distributed"]["launcher"] == "torchrun"
    assert manifest["distributed"]["nproc"] == 2
    assert manifest["metrics"]["train"]["train_steps"] == 10
    assert "perplexity" in manifest["metrics"]  # the parent evaluated the ranks' model


def test_an_accelerate_config_passes_through(project):
    root, single = project
    (root / "accelerate.yaml").write_text(ACCELERATE_CONFIG)
    run = _qslm(
        root,
        "run",
        "pipeline.toml",
        "--accelerate-config",
        "accelerate.yaml",
        "--set",
        "train.options.batch_size=4",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    multi = Path(run.stdout.strip().splitlines()[-1])
    assert "accelerate launch --config_file accelerate.yaml" in run.stderr
    # the config's num_processes: 2 was honoured (with one process the batches would be 4)
    _same_training(single, multi)
    assert json.loads((multi / "manifest.json").read_text())["distributed"]["launcher"] == (
        "accelerate"
    )


def test_a_failing_rank_is_a_clear_error_and_leaves_no_build(project):
    root, _ = project
    builds = root / "builds" / "ddp"
    before = sorted(p.name for p in builds.iterdir())
    failed = _qslm(
        root, "run", "pipeline.toml", "--nproc", "2", "--set", "train.options.context_length=8192"
    )
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert "training under torchrun failed" in failed.stderr
    assert "rank 0: the training data is too short" in failed.stderr
    assert "Traceback" not in failed.stderr.split("training under torchrun failed")[1]
    assert sorted(p.name for p in builds.iterdir()) == before  # staging discarded


def test_bad_launch_options_are_config_errors(project):
    root, _ = project
    zero = _qslm(root, "run", "pipeline.toml", "--nproc", "0")
    assert zero.returncode == 2 and "--nproc 0: must be 1 or more" in zero.stderr
    missing = _qslm(root, "run", "pipeline.toml", "--accelerate-config", "nowhere.yaml")
    assert missing.returncode == 2 and "nowhere.yaml: no such file" in missing.stderr


def test_a_killed_two_process_run_resumes(project, two_processes):
    root, _ = project
    uninterrupted = Path(two_processes.stdout.strip().splitlines()[-1])
    args = ("run", "pipeline.toml", "--nproc", "2", "--set", "train.options.batch_size=4")
    args += ("--set", "train.options.checkpoint_every=3")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-c", "from qslm.cli import main; main()", *args]
    proc = subprocess.Popen(
        cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + 300
    builds = root / "builds" / "ddp"
    while time.monotonic() < deadline and proc.poll() is None:
        if list(builds.glob(".staging-*/checkpoints/checkpoint-*/trainer_state.json")):
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before its first checkpoint"
    time.sleep(2)  # the ranks get SIGTERM when their parent dies (PR_SET_PDEATHSIG)

    resumed = _qslm(root, *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "training goes on from checkpoint-" in resumed.stderr, resumed.stderr[-3000:]
    build = Path(resumed.stdout.strip().splitlines()[-1])
    got = json.loads((build / "metrics.json").read_text())["train"]
    want = json.loads((uninterrupted / "metrics.json").read_text())["train"]
    assert got["train_steps"] == want["train_steps"] == 10
    assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
    # each rank restored its own RNG state and the data order: same weights as no kill at all
    assert (build / "model" / "model.safetensors").read_bytes() == (
        uninterrupted / "model" / "model.safetensors"
    ).read_bytes()
