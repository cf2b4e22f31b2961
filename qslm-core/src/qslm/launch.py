"""Training in several processes: ``qslm run --nproc N`` and ``--accelerate-config FILE``.

The parent process runs the data and select stages, writes the records into the staging
folder and starts ``torchrun`` (or ``accelerate launch``) with this module as the program of
every rank. Each rank rebuilds the pipeline from the same file and ``--set`` options, runs
only the trainer's ``train()`` (the Hugging Face Trainer does the distributed work: process
group, DistributedSampler, gradient all-reduce) and rank 0 writes the Artifact back as JSON.
The parent then evaluates and publishes as in a one-process run.

We launch with torchrun/accelerate themselves rather than spawning processes of our own:
they bring rendezvous, per-rank environment, failure propagation and multi-node support.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from qslm.errors import ConfigError, QslmError
from qslm.resources import usable_cpus

if TYPE_CHECKING:
    from qslm.components import Artifact, Dataset
    from qslm.context import RunContext

DIST_DIR = "dist"  # in the staging folder while the ranks run; removed before publishing
JOB_ENV = "QSLM_LAUNCH_JOB"  # the job travels in the environment: --set values may be secrets
PROGRESS_MARK = "[qslm] "  # rank 0's progress lines; the rest is the launcher's and libraries'
LAUNCH_LOG = "launch.log"  # in the build: what the launcher and the ranks printed besides progress


@dataclass
class Launch:
    """How to start the training processes (``qslm run --nproc/--accelerate-config``)."""

    nproc: int | None = None
    accelerate_config: Path | None = None
    overrides: Sequence[str] = ()
    output: str | None = None

    def __post_init__(self) -> None:
        if self.nproc is not None and self.nproc < 1:
            raise ConfigError(f"--nproc {self.nproc}: must be 1 or more")
        if self.accelerate_config is not None and not Path(self.accelerate_config).is_file():
            raise ConfigError(f"--accelerate-config {self.accelerate_config}: no such file")

    def command(self, staging: Path) -> list[str]:
        """The launcher's command line for ``staging``."""
        program = ["-m", "qslm.launch", str(staging)]
        if self.accelerate_config is not None:
            cmd = [sys.executable, "-m", "accelerate.commands.launch"]
            cmd += ["--config_file", str(Path(self.accelerate_config).absolute())]
            if self.nproc is not None:
                cmd += ["--num_processes", str(self.nproc)]
            return [*cmd, *program]
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={self.nproc or 1}",
            *program,
        ]

    def environment(self, job: dict[str, Any]) -> dict[str, str]:
        """The launched processes' environment: ours, the job, and each rank's share of the
        CPUs as ``OMP_NUM_THREADS`` unless the user set it (torchrun would give every rank
        1 thread and warn; all of them each would oversubscribe the cores)."""
        env = {**os.environ, JOB_ENV: json.dumps(job)}
        if self.nproc and "OMP_NUM_THREADS" not in env:
            env["OMP_NUM_THREADS"] = str(max(1, usable_cpus() // self.nproc))
        return env

    def train(self, ctx: RunContext, data: Dataset) -> Artifact:
        """Run the trainer of ``ctx.config`` in the launched processes; rank 0's Artifact."""
        from qslm.builds import config_sha256, write_json
        from qslm.components import Artifact

        config = ctx.config
        dist = ctx.build_dir / DIST_DIR
        if dist.exists():  # left by a killed run that we resume
            for p in dist.iterdir():
                p.unlink()
        dist.mkdir(exist_ok=True)
        write_json(dist / "records.json", dataclasses.asdict(data))
        job = {
            "pipeline": str(config.path),
            "overrides": list(self.overrides),
            "output": self.output,
            "config_sha256": config_sha256(config.raw),
            "resume": ctx.resume,
        }
        how = (
            f"accelerate launch --config_file {self.accelerate_config}"
            if self.accelerate_config
            else f"torchrun, {self.nproc or 1} processes"
        )
        ctx.progress(f"  launching the training ({how})")
        ctx.manifest["distributed"] = {
            "launcher": "accelerate" if self.accelerate_config else "torchrun",
            "nproc": self.nproc,
            "accelerate_config": str(self.accelerate_config) if self.accelerate_config else None,
        }
        proc = subprocess.Popen(
            self.command(ctx.build_dir),
            env=self.environment(job),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        assert proc.stdout is not None
        tail: list[str] = []
        with (ctx.build_dir / LAUNCH_LOG).open("a", encoding="utf-8") as log:
            _forward(proc.stdout, ctx.progress, log, tail)
        code = proc.wait()
        errors = sorted(dist.glob("error-*.txt"))
        if code != 0 or errors:
            told = [p.read_text(encoding="utf-8").strip() for p in errors]
            # expected errors (QslmError) of the ranks say it all; for a crash, the launcher's
            # report and the traceback are what there is
            detail = "\n".join(told) if told else "\n".join(tail[-40:])
            raise QslmError(f"training under {how.split(',')[0]} failed (exit {code}):\n{detail}")
        try:
            result = json.loads((dist / "artifact.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise QslmError(f"training finished but rank 0 left no artifact: {exc}") from None
        ctx.manifest.update(result.get("manifest", {}))
        for p in dist.iterdir():
            p.unlink()
        dist.rmdir()
        return Artifact(**result["artifact"])


def _forward(
    stream: IO[str], progress: Callable[[str], None], log: IO[str], tail: list[str]
) -> None:
    """Rank 0's progress lines go to progress; everything else (torchrun's banner, library
    warnings, a crashing rank's traceback) to the build's launch.log, and its tail is kept
    for the error message."""
    for line in stream:
        line = line.rstrip("\n")
        if line.startswith(PROGRESS_MARK):
            progress(line[len(PROGRESS_MARK) :])
            continue
        log.write(line + "\n")
        log.flush()
        tail.append(line)
        del tail[:-200]


def _die_with_parent() -> None:
    """In the launcher's process: get SIGTERM when qslm dies, even by SIGKILL, so no orphan
    rank keeps writing into a staging folder that ``--resume`` may take over (Linux only)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_rank(staging: Path) -> None:
    """One rank: rebuild the pipeline, train, and (rank 0) write the Artifact as JSON."""
    import torch

    from qslm.builds import config_sha256, write_json
    from qslm.components import AttentionBackend, Dataset, Trainer
    from qslm.config import load_pipeline
    from qslm.context import RunContext
    from qslm.plugins import get_registry

    rank = int(os.environ.get("RANK", "0"))
    job = json.loads(os.environ[JOB_ENV])
    if not torch.cuda.is_available():
        # Without this, accelerate (under the HF Trainer) sees no GPU, stays in one-process
        # mode, and every rank trains the whole batch on its own: no DDP, no data sharding.
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    registry = get_registry()
    config = load_pipeline(
        job["pipeline"], registry, overrides=job["overrides"], output=job["output"]
    )
    if config_sha256(config.raw) != job["config_sha256"]:
        raise QslmError(
            f"{config.path}: the pipeline file changed after the run started; run it again"
        )
    records = json.loads((staging / DIST_DIR / "records.json").read_text(encoding="utf-8"))
    data = Dataset(**records)
    ctx = RunContext(
        config=config,
        registry=registry,
        build_dir=staging,
        seed=config.seed,
        resume=bool(job["resume"]),
        main_process=rank == 0,
        progress=_marked if rank == 0 else _silent,
    )
    trainer = config.train.create()
    attention = config.attention.create()
    assert isinstance(trainer, Trainer) and isinstance(attention, AttentionBackend)
    artifact = trainer.train(ctx, data, attention)
    if rank == 0:
        write_json(
            staging / DIST_DIR / "artifact.json",
            {"artifact": dataclasses.asdict(artifact), "manifest": _jsonable(ctx.manifest)},
        )


def _silent(message: str) -> None:
    pass


def _marked(message: str) -> None:
    for line in message.splitlines() or [""]:
        print(PROGRESS_MARK + line, flush=True)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: python -m qslm.launch STAGING_DIR (started by qslm run --nproc)")
        return 2
    staging = Path(argv[0])
    try:
        run_rank(staging)
    except QslmError as exc:
        # the parent shows this message instead of torchrun's traceback summary
        rank = os.environ.get("RANK", "0")
        (staging / DIST_DIR / f"error-{rank}.txt").write_text(
            f"rank {rank}: {exc}\n", encoding="utf-8"
        )
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
