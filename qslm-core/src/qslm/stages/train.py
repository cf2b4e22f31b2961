"""The train stage: the trainer (in this process, or in several under ``--nproc``) turns the
records into an artifact in the staging folder. Module selection (``[train.select_modules]``)
runs inside the trainer, as a callback of :mod:`qslm.train.module_select`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qslm.components import Artifact, AttentionBackend, Dataset, Trainer

if TYPE_CHECKING:
    from qslm.context import RunContext
    from qslm.launch import Launch


def run_train_stage(
    ctx: RunContext,
    trainer: Trainer,
    attention: AttentionBackend,
    data: Dataset,
    launch: Launch | None = None,
) -> Artifact:
    """Train; ``launch`` runs the training in several processes (``qslm run --nproc N``)."""
    with ctx.stage("train"):
        if launch is None:
            return trainer.train(ctx, data, attention)
        return launch.train(ctx, data)
