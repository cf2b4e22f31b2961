"""The run context: what the stages of one pipeline run share, instead of globals."""

from __future__ import annotations

import json
import logging
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
    return bool(weights) and any(path.glob("rng_state*.pth"))


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

    @property
    def checkpoint_dir(self) -> Path:
        """Where trainers keep resumable checkpoints (``checkpoint-<step>/`` folders)."""
        return self.build_dir / "checkpoints"

    def resume_checkpoint(self) -> str | None:
        """The checkpoint to resume from: the newest complete one when resuming, else None.

        A checkpoint is complete when the files the Hugging Face Trainer writes last are all
        there; a process killed while saving leaves an incomplete one, which is skipped.
        """
        if not self.resume or not self.checkpoint_dir.is_dir():
            return None
        steps = []
        for p in self.checkpoint_dir.iterdir():
            name, _, step = p.name.partition("-")
            if name == "checkpoint" and step.isdigit() and _complete_checkpoint(p):
                steps.append((int(step), p))
        return str(max(steps)[1]) if steps else None

    def path(self, *parts: str) -> Path:
        """A path inside the staging build directory (parent folders created)."""
        p = self.build_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def log_event(self, event: str, **data: Any) -> None:
        """Append one JSON line to the build's training log (``train_log.jsonl``)."""
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
