"""Pre-flight checks of a whole pipeline that no single component can make: the output
folder, and the trainer's memory and disk against this machine. ``qslm validate`` and
``qslm run`` both run them (through :func:`qslm.pipeline.plan`), so what validates runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from qslm.components import Trainer
from qslm.config import PipelineConfig
from qslm.errors import ConfigError, QslmError
from qslm.resources import check_disk, check_memory, format_bytes, free_disk

if TYPE_CHECKING:
    from qslm.context import RunContext


def output_folder(config: PipelineConfig) -> Path:
    """Where the pipeline's builds go: ``--output``, else ``[pipeline] output``, else ./builds."""
    return config.output or (Path.cwd() / "builds")


def check_output(config: PipelineConfig) -> None:
    """The builds' folder (or the nearest parent that exists) must be a writable folder."""
    target = output_folder(config) / config.name
    if "\0" in str(target):
        raise ConfigError(f"output folder {output_folder(config)!r}: a path cannot hold a NUL")
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"output folder {output_folder(config)} is not writable: {existing} is a file, "
            "not a folder (choose another with --output)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"output folder {output_folder(config)} is not writable ({existing}: permission "
            "denied; choose another with --output)"
        )


def check_resources(config: PipelineConfig) -> None:
    """The trainer's memory and disk estimate against this machine; a
    :class:`~qslm.resources.ResourceError` names the options when either cannot fit."""
    trainer = config.train.create()
    assert isinstance(trainer, Trainer)
    estimate = trainer.estimate()
    if estimate is None:
        return
    check_memory(estimate.memory, f"{config.path.name}: {estimate.options}", estimate.how)
    check_disk(
        estimate.disk, output_folder(config), f"{config.path.name}: the build of {config.name}"
    )


def disk_full_error(ctx: RunContext, discard: Callable[[], None]) -> QslmError:
    """The error for a disk that filled up during a run. The staging folder stays when it holds
    a checkpoint (``--resume`` goes on from it once there is space); else ``discard`` removes
    it, since there is nothing in it to resume."""
    config, staging = ctx.config, ctx.build_dir
    trainer = config.train.create()
    estimate = trainer.estimate() if isinstance(trainer, Trainer) else None
    need = f"about {format_bytes(estimate.disk)}" if estimate else "more"
    free = format_bytes(free_disk(staging.parent))
    checkpoint = ctx.latest_checkpoint()
    head = f"no space left on the disk of {output_folder(config)} ({free} free; the build needs "
    if checkpoint is not None:
        return QslmError(
            f"{head}{need}). The run stopped; {staging} keeps {checkpoint.name}: free some "
            f"space, then qslm run {config.path.name} --resume (with the same --set options)"
        )
    discard()
    return QslmError(
        f"{head}{need}). The run stopped before its first checkpoint, so its staging folder "
        "was removed; free some space and run again"
    )
