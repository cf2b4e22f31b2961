"""Pieces the Hugging Face ``Trainer``-based trainers share."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qslm.context import RunContext

# Bounds on how long a trainer may be asked to run: far beyond any run these trainers are for,
# and low enough that a typo (epochs = 1e300) is refused by `qslm validate` instead of hanging.
MAX_EPOCHS = 100_000
MAX_STEPS = 1_000_000_000


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


class LossTracker:
    """Every optimiser step's training loss, kept with each checkpoint, so that a resumed run
    reports the same ``train_loss`` and ``train_loss_mean`` as an uninterrupted one.

    Why not the Trainer's own ``training_loss``: it averages only the steps of its own
    ``train()`` call, so after ``--resume`` it covers the resumed steps alone, and its logged
    losses cover windows that a checkpoint can split.
    """

    FILE = "qslm_losses.json"

    def __init__(self, ctx: RunContext, window: int) -> None:
        self.ctx, self.window = ctx, window
        self.losses: list[float] = []  # losses[k] is step k + 1's
        self.complete = True  # False when a checkpoint without FILE was resumed
        self._pending: Any = 0.0

    def attach(self, trainer: Any) -> None:
        """Record ``trainer``'s step losses (and restore those of the checkpoint it resumes)."""
        checkpoint = self.ctx.resume_checkpoint()
        if checkpoint is not None:
            saved = Path(checkpoint) / self.FILE
            try:
                self.losses = [float(v) for v in json.loads(saved.read_text())["losses"]]
            except (OSError, ValueError, KeyError, TypeError):
                self.complete = False  # written by an older qslm, or the run died just then
        original = trainer.training_step

        def training_step(*args: Any, **kwargs: Any) -> Any:
            loss = original(*args, **kwargs)  # one micro-batch's share of the step's loss
            self._pending = self._pending + loss.detach()
            return loss

        trainer.training_step = training_step
        trainer.add_callback(self._callback())

    def _callback(self) -> Any:
        from transformers import TrainerCallback

        tracker = self

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                tracker._step_end(state)

            def on_save(self, args, state, control, **kwargs):
                if state.is_world_process_zero:
                    folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                    data = {"steps": state.global_step, "losses": tracker.losses}
                    (folder / tracker.FILE).write_text(json.dumps(data), encoding="utf-8")

        return Callback()

    def _step_end(self, state: Any) -> None:
        import torch

        loss = torch.as_tensor(self._pending, dtype=torch.float32)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(loss)  # the Trainer logs the mean over the ranks too
            loss = loss / torch.distributed.get_world_size()
        del self.losses[state.global_step - 1 :]  # none, unless a checkpoint repeats steps
        self.losses.append(float(loss))
        self._pending = 0.0

    def metrics(self) -> dict[str, float | int]:
        """``train_loss`` (the mean over the last ``window`` steps, a log line's span) and
        ``train_loss_mean`` (over every step); NaN when no step ran."""
        if not self.losses:
            return {"train_loss": math.nan, "train_loss_mean": math.nan}
        out: dict[str, float | int] = {
            "train_loss": math.fsum(self.losses[-self.window :]) / len(self.losses[-self.window :]),
            "train_loss_mean": math.fsum(self.losses) / len(self.losses),
        }
        if not self.complete:  # honest about a mean that misses the steps before the resume
            out["train_loss_mean_steps"] = len(self.losses)
        return out


class EvalLogToContext(LogToContext):
    """:class:`LogToContext` that also records validation losses, on the main process only
    (under torchrun every rank runs the callbacks; one training log is enough)."""

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.first_eval_loss = float("nan")
        self.last_eval_loss = float("nan")
        self.last_eval_step = -1

    def callback(self) -> Any:
        from transformers import TrainerCallback

        recorder = self

        class Callback(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                if state.is_world_process_zero:
                    recorder.on_log(state, logs or {})

        return Callback()

    def on_log(self, state: Any, logs: dict[str, Any]) -> None:
        if "eval_loss" in logs:
            loss = float(logs["eval_loss"])
            if math.isnan(self.first_eval_loss):
                self.first_eval_loss = loss
            self.last_eval_loss, self.last_eval_step = loss, state.global_step
            self.ctx.log_event("eval", step=state.global_step, eval_loss=loss)
            self.ctx.progress(f"  step {state.global_step}/{state.max_steps}  eval loss {loss:.3f}")
        super().on_log(state, logs)
