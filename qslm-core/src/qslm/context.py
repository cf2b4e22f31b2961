"""The run context: what the stages of one pipeline run share, instead of globals."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qslm.config import PipelineConfig
    from qslm.plugins import Registry


def _stderr_progress(message: str) -> None:
    import click

    click.echo(message, err=True)


_CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def _complete_checkpoint(path: Path) -> bool:
    if not all((path / name).is_file() for name in _CHECKPOINT_FILES):
        return False
    weights = list(path.glob("*.safetensors"))
    if not weights or not any(path.glob("rng_state*.pth")):
        return False
    # trainer_state.json is written last but not atomically: a kill while writing it leaves a
    # file that exists and does not parse. Files written before it are whole (a SIGKILL loses
    # no page-cache writes; only a power cut would).
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and str(state.get("global_step")) == path.name.partition("-")[2]


@dataclass
class RunContext:
    """Seed, staging build directory, logger, progress reporter and registry of one run.

    Stages write their files under :attr:`build_dir` (the staging directory, published as
    ``vN`` only when the run completes) and add their facts to :attr:`manifest`.
    """

    config: PipelineConfig
    registry: Registry
    build_dir: Path
    seed: int
    progress: Callable[[str], None] = _stderr_progress
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("qslm.run"))
    manifest: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    resume: bool = False
    """Continue training from the newest complete checkpoint (``qslm run --resume``)."""
    main_process: bool = True
    """False in the ranks other than 0 of a ``qslm run --nproc N`` run: they write no log."""
    tracking: Any = None
    """The run's :class:`qslm.tracking.Tracking` when ``[track]`` names a tracker."""

    @property
    def checkpoint_dir(self) -> Path:
        """Where trainers keep resumable checkpoints (``checkpoint-<step>/`` folders)."""
        return self.build_dir / "checkpoints"

    def resume_checkpoint(self) -> str | None:
        """The checkpoint to resume from: the newest complete one when resuming, else None.

        A checkpoint is complete when the files the Hugging Face Trainer writes last are all
        there; a process killed while saving leaves an incomplete one, which is skipped.
        """
        if not self.resume:
            return None
        latest = self.latest_checkpoint()
        return str(latest) if latest else None

    def _checkpoints(self) -> list[tuple[int, Path]]:
        if not self.checkpoint_dir.is_dir():
            return []
        found = []
        for p in self.checkpoint_dir.iterdir():
            name, _, step = p.name.partition("-")
            if name == "checkpoint" and step.isdigit() and p.is_dir():
                found.append((int(step), p))
        return sorted(found)

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint in :attr:`checkpoint_dir`, resuming or not."""
        complete = [p for _, p in self._checkpoints() if _complete_checkpoint(p)]
        return complete[-1] if complete else None

    def discard_incomplete_checkpoints(self) -> list[str]:
        """Delete the checkpoints a killed run left half-written; returns their names.

        The Trainer would write the same step again into such a folder, but its checkpoint
        rotation must never see a half-written folder as the newest one.
        """
        removed = []
        for _, p in self._checkpoints():
            if not _complete_checkpoint(p):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
        return removed

    def path(self, *parts: str) -> Path:
        """A path inside the staging build directory (parent folders created)."""
        p = self.build_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def log_event(self, event: str, **data: Any) -> None:
        """Append one JSON line to the build's training log (``train_log.jsonl``)."""
        if not self.main_process:
            return
        record = {"time": round(time.time(), 3), "event": event, **data}
        with self.path("train_log.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=str) + "\n")

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage and announce it on the progress reporter."""
        self.progress(f"[{name}] ...")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)
        self.progress(f"[{name}] done in {self.timings[name]:.1f}s")
