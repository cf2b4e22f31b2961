"""``qslm run --resume``: a run SIGKILLed at any moment goes on from its last complete
checkpoint and ends where an uninterrupted run ends; earlier builds are not touched."""

from __future__ import annotations

import hashlib
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
name = "resumable"
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
checkpoint_every = 4
logging_every = 4
threads = 1
"""
CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", "model.safetensors")


def _tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode() + p.read_bytes())
    return h.hexdigest()


def _qslm(*args: str) -> list[str]:
    return [sys.executable, "-c", "from qslm.cli import main; main()", *args]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A pipeline folder with one uninterrupted reference build (v1)."""
    root = tmp_path_factory.mktemp("resume")
    (root / "notes.txt").write_text(
        "\n\n".join(
            f"Line {i}: tabu search keeps a short memory of flips; annealing cools {i % 7}."
            for i in range(120)
        )
    )
    (root / "pipeline.toml").write_text(PIPELINE.format(steps=60))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        _qslm("run", "pipeline.toml"), cwd=root, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return root, env


def _start(root: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        _qslm("run", "pipeline.toml"),
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def _staging(root: Path) -> Path | None:
    found = list((root / "builds" / "resumable").glob(".staging-*"))
    return found[0] if found else None


def _checkpoints(staging: Path | None) -> list[Path]:
    if staging is None or not (staging / "checkpoints").is_dir():
        return []
    return list((staging / "checkpoints").glob("checkpoint-*"))


def _complete(checkpoint: Path) -> bool:
    if not all((checkpoint / f).is_file() for f in CHECKPOINT_FILES):
        return False
    try:  # written last, and not atomically: it may exist and still be empty
        json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def _kill_when(proc: subprocess.Popen, root: Path, moment: str) -> str:
    """SIGKILL ``proc`` at ``moment``; returns what the checkpoints folder held then."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        staging = _staging(root)
        cps = _checkpoints(staging)
        if moment == "before-checkpoint" and staging and (staging / "train_log.jsonl").exists():
            break
        if moment == "after-checkpoint" and any(_complete(c) for c in cps):
            break
        if moment == "writing-checkpoint" and any(not _complete(c) for c in cps):
            break  # a checkpoint folder whose files are not all there: being written
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before the moment came"
    return ", ".join(
        f"{c.name}{'' if _complete(c) else ' (half-written)'}"
        for c in sorted(_checkpoints(_staging(root)))
    )


@pytest.mark.parametrize("moment", ["after-checkpoint", "writing-checkpoint", "before-checkpoint"])
def test_killed_run_resumes_to_the_uninterrupted_result(project, moment):
    root, env = project
    builds = root / "builds" / "resumable"
    v1 = builds / "v1"
    before = {p.name: _tree_digest(p) for p in builds.iterdir() if p.name.startswith("v")}

    proc = _start(root, env)
    seen = _kill_when(proc, root, moment)
    print(f"{moment}: killed with checkpoints [{seen}]")
    staging = _staging(root)
    assert staging is not None and (staging / "run.json").is_file()
    if moment == "after-checkpoint":
        assert seen, "no checkpoint when killed"

    resumed = subprocess.run(
        _qslm("run", "pipeline.toml", "--resume"), cwd=root, capture_output=True, text=True, env=env
    )
    assert resumed.returncode == 0, f"killed with checkpoints [{seen}]\n{resumed.stderr[-3000:]}"
    assert "resuming the run" in resumed.stderr
    build = Path(resumed.stdout.strip().splitlines()[-1])
    assert not list(builds.glob(".staging-*")), "the resumed staging folder was not published"

    # earlier builds are byte-identical
    for name, digest in before.items():
        assert _tree_digest(builds / name) == digest, name

    reference = json.loads((v1 / "metrics.json").read_text())["train"]
    got = json.loads((build / "metrics.json").read_text())["train"]
    assert got["train_steps"] == reference["train_steps"] == 60
    assert got["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-3), seen
    manifest = json.loads((build / "manifest.json").read_text())
    if moment == "after-checkpoint":
        assert manifest["resumed"]["checkpoint"] is not None, resumed.stderr[-3000:]
    assert not (build / "run.json").exists() and not (build / ".run.lock").exists()
    # the Trainer restores weights, optimiser, schedule, RNG states and data order: the
    # resumed model is the uninterrupted one, bit for bit
    assert (build / "model" / "model.safetensors").read_bytes() == (
        v1 / "model" / "model.safetensors"
    ).read_bytes(), f"weights differ after resuming with checkpoints [{seen}]"


def test_resume_refuses_another_configuration_and_nothing_to_resume(project):
    root, env = project
    proc = _start(root, env)
    _kill_when(proc, root, "after-checkpoint")
    staging = _staging(root)

    other = subprocess.run(
        _qslm("run", "pipeline.toml", "--resume", "--set", "train.options.learning_rate=0.01"),
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
    )
    assert other.returncode == 2
    assert "train.options.learning_rate: (absent) -> 0.01" in other.stderr, other.stderr
    assert "Traceback" not in other.stderr
    assert staging.is_dir(), "a refused resume must leave the interrupted run alone"

    listed = subprocess.run(
        _qslm("builds", "list"), cwd=root, capture_output=True, text=True, env=env
    )
    assert f"resumable/{staging.name}  (interrupted" in listed.stdout, listed.stdout

    cleaned = subprocess.run(
        _qslm("builds", "clean"), cwd=root, capture_output=True, text=True, env=env
    )
    assert cleaned.returncode == 0 and f"removed resumable/{staging.name}" in cleaned.stdout
    assert not staging.exists()

    nothing = subprocess.run(
        _qslm("run", "pipeline.toml", "--resume"), cwd=root, capture_output=True, text=True, env=env
    )
    assert nothing.returncode == 2 and "nothing to resume" in nothing.stderr, nothing.stderr


LORA_PIPELINE = """
[pipeline]
name = "lora-resumable"
seed = 5

[data.options]
paths = ["notes.txt"]

[train]
trainer = "lora"
[train.options]
base_model = "{base}"
max_steps = 16
batch_size = 4
learning_rate = 0.01
dropout = 0.0
logging_every = 2
checkpoint_every = 4
threads = 1
"""


def test_a_killed_lora_run_resumes_to_the_uninterrupted_adapter(tmp_path):
    """The same API carries the ``lora`` trainer: SIGKILL after a checkpoint, --resume, and
    the adapter equals the one of an uninterrupted run."""
    pytest.importorskip("peft")
    import transformers
    from transformers import AutoModelForCausalLM, LlamaConfig

    from qslm.train.scratch import train_tokenizer

    texts = [f"Note {i}: a lock file outlives no process; {i % 4} checkpoints." for i in range(80)]
    (tmp_path / "notes.txt").write_text("\n\n".join(texts))
    base = tmp_path / "base"
    tokenizer = train_tokenizer(texts, 300, 2, 64)
    eos = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
    )  # fmt: skip
    transformers.set_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    (tmp_path / "pipeline.toml").write_text(LORA_PIPELINE.format(base=base))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    straight = subprocess.run(
        _qslm("run", "pipeline.toml"), cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert straight.returncode == 0, straight.stderr[-3000:]
    v1 = Path(straight.stdout.strip().splitlines()[-1])

    proc = subprocess.Popen(
        _qslm("run", "pipeline.toml"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    builds = tmp_path / "builds" / "lora-resumable"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        staging = next(iter(builds.glob(".staging-*")), None)
        if staging and any(
            (c / "trainer_state.json").is_file() and (c / "adapter_model.safetensors").is_file()
            for c in _checkpoints(staging)
        ):
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before its first checkpoint"

    resumed = subprocess.run(
        _qslm("run", "pipeline.toml", "--resume"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "training goes on from checkpoint-" in resumed.stderr, resumed.stderr[-3000:]
    build = Path(resumed.stdout.strip().splitlines()[-1])
    want = json.loads((v1 / "metrics.json").read_text())["train"]
    got = json.loads((build / "metrics.json").read_text())["train"]
    assert got["train_steps"] == want["train_steps"] == 16
    assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-4)
    adapter = "adapter/adapter_model.safetensors"
    assert (build / adapter).read_bytes() == (v1 / adapter).read_bytes()
