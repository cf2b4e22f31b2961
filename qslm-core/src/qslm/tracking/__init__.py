"""Experiment tracking: ``[track]`` in ``pipeline.toml`` sends each run to MLflow (or
TensorBoard, W&B, trackio, or a third party's tracker registered with
``qslm_register_trackers``). Trackers import their libraries only when a run uses them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qslm.tracking.base import FAILED, FINISHED, KILLED, Tracker
from qslm.tracking.session import Terminated, Tracking

if TYPE_CHECKING:
    from qslm.context import RunContext


def trainer_arguments(ctx: RunContext) -> dict[str, Any]:
    """The tracking part of a run's Hugging Face ``TrainingArguments``: ``report_to`` the
    tracker's own Trainer integration (TensorBoard, W&B, trackio), else ``"none"`` (qslm's
    callback sends the steps to MLflow, so qslm, not the integration, owns the run)."""
    track = getattr(ctx.config, "track", None)  # (a context outside a pipeline has none)
    session = getattr(ctx, "tracking", None)  # None in the ranks of --nproc: the config says
    integration = getattr(track.cls, "report_to", None) if track is not None else None
    if integration is None or (session is not None and not session.active):
        return {"report_to": "none"}
    arguments: dict[str, Any] = {"report_to": [integration]}
    extra = getattr(getattr(session, "tracker", None), "trainer_arguments", None)
    if extra is not None:
        arguments.update(extra())
    return arguments


__all__ = ["FAILED", "FINISHED", "KILLED", "Terminated", "Tracker", "Tracking", "trainer_arguments"]
