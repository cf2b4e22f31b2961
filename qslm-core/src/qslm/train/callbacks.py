"""Pieces the Hugging Face ``Trainer``-based trainers share."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qslm.context import RunContext


class LogToContext:
    """Sends each logged step to the build's training log and a short line to progress."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.last_loss = float("nan")
        self.started = time.perf_counter()

    def callback(self) -> Any:
        from transformers import TrainerCallback

        recorder = self

        class Callback(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                recorder.on_log(state, logs or {})

        return Callback()

    def on_log(self, state: Any, logs: dict[str, Any]) -> None:
        if self.ctx.tracking is not None:  # qslm's callback, not report_to, feeds MLflow
            self.ctx.tracking.log_step(state.global_step, logs)
        if "loss" not in logs:
            return
        loss = float(logs["loss"])
        self.last_loss = loss
        lr = float(logs.get("learning_rate", 0.0))
        extra = {k: logs[k] for k in ("grad_norm", "epoch") if k in logs}
        self.ctx.log_event("train", step=state.global_step, loss=loss, learning_rate=lr, **extra)
        self.ctx.progress(
            f"  step {state.global_step}/{state.max_steps}  loss {loss:.3f}  "
            f"lr {lr:.2e}  {time.perf_counter() - self.started:.0f}s"
        )


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects taskset and container CPU sets
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1
