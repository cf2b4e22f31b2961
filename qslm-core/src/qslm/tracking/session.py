"""One run's tracking: the pipeline's calls into its tracker, guarded so that a failing
tracker (server down, disk full) warns once and the build goes on without it."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qslm.builds import flatten, redact, write_json
from qslm.secrets import strip_credentials
from qslm.tracking.base import FINISHED, KILLED, STATE_FILE, Tracker, is_number, read_state

if TYPE_CHECKING:
    from qslm.config import PipelineConfig
    from qslm.context import RunContext

_PARAM_MAX = 6000  # MLflow's limit on a parameter value; longer ones are cut


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so the run unwinds as after Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated(f"signal {signum}")


class Tracking:
    """The tracker of one ``qslm run`` (or none): the pipeline calls ``start``, the trainers'
    callback ``log_step``, then ``before_publish`` and ``finish``, or ``end`` on failure."""

    def __init__(self, tracker: Tracker | None, name: str, progress: Callable[[str], None]):
        self.tracker = tracker
        self.name = name
        self.progress = progress
        self.run_id: str | None = None
        self.error: str | None = None
        self.steps_logged = 0
        self._ctx: RunContext | None = None
        self._previous_sigterm: Any = None

    @classmethod
    def for_config(cls, config: PipelineConfig, progress: Callable[[str], None]) -> Tracking:
        """The tracking of a pipeline. A tracker whose library is missing is a
        :class:`~qslm.errors.ConfigError` now, before any folder is made."""
        if config.track is None:
            return cls(None, "", progress)
        tracker = config.track.create()
        assert isinstance(tracker, Tracker)
        tracker.plan()
        return cls(tracker, config.track.spec.name, progress)

    @property
    def active(self) -> bool:
        return self.tracker is not None and self.error is None

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        if not self.active:
            return None
        try:
            return fn(*args)
        except Exception as exc:  # a tracker never fails a build: warn once, stop tracking
            text = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
            self.error = strip_credentials(f"{what}: {text}")
            self.progress(
                f"warning: tracking with {self.name} failed ({self.error}); the build goes on "
                "without tracking and its manifest says so"
            )
            return None

    def start(self, ctx: RunContext) -> None:
        """Open (on ``--resume``: reopen) the run, log the configuration, catch SIGTERM."""
        if self.tracker is None:
            return
        self._ctx = ctx
        ctx.tracking = self
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
        state = read_state(ctx.build_dir) if ctx.resume else {}
        previous = state.get("run_id") if state.get("tracker") == self.name else None
        self.run_id = self._call("start", self.tracker.start, ctx, previous)
        if not self.active:
            return
        # for --resume and builds clean; a full disk here is a tracking failure, not the run's
        self._call("state", write_json, ctx.build_dir / STATE_FILE, self.record())
        if not self.active:
            return
        again = " continues" if previous and self.run_id == previous else ""
        ctx.progress(f"  tracking: {self.name} run {self.run_id}{again}")
        self._call("log_params", self.tracker.log_params, _params(ctx.config.raw))

    def record(self) -> dict[str, Any]:
        """The manifest's ``tracking`` key: tracker, run id, URI (no credentials), status."""
        if self.tracker is None:
            return {}
        out: dict[str, Any] = {"tracker": self.name, "run_id": self.run_id}
        if self.run_id is not None:
            # not through _call: the record is wanted after a failure too, and a tracker
            # that cannot say where it logs leaves the run id and status, which say enough
            with contextlib.suppress(Exception):
                out.update(redact(self.tracker.record()))
        out["status"] = "failed" if self.error else "ok"
        if self.error:
            out["error"] = self.error
        return out

    def log_step(self, step: int, logs: dict[str, Any]) -> None:
        """The Trainer's logged values at ``step`` (called by qslm's Trainer callback)."""
        if self.tracker is None or self.tracker.report_to is not None:
            return  # the Trainer's own integration logs the steps
        metrics = {f"train.{k}": float(v) for k, v in logs.items() if is_number(v)}
        if metrics:
            self.steps_logged += 1
            self._call("log_metrics", self.tracker.log_metrics, metrics, step)

    def before_publish(self, manifest: dict[str, Any]) -> None:
        """Put the ``tracking`` key into the manifest; the staging state is no longer needed."""
        if self.tracker is None or self._ctx is None:
            return
        (self._ctx.build_dir / STATE_FILE).unlink(missing_ok=True)
        manifest["tracking"] = self.record()

    def finish(self, build: Path, manifest: dict[str, Any]) -> None:
        """Log the stage metrics, tags and artifacts of the published ``build``, register it,
        end the run FINISHED and update the manifest's ``tracking`` key."""
        if self.tracker is None or not self.active:
            return
        from qslm.tracking.publish import finish_run

        finish_run(self, build, manifest)

    def end(self, status: str) -> None:
        """End the run FAILED or KILLED (the run's process is going down)."""
        if self.tracker is not None and self.run_id is not None:
            self._call(f"end {status}", self.tracker.end, status)
            if status == KILLED:
                self.progress(f"  tracking: {self.name} run {self.run_id} ended {status}")

    def close(self) -> None:
        """Give SIGTERM back its previous handler."""
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None


def _params(raw: dict[str, Any]) -> dict[str, str]:
    """The resolved configuration as dotted keys with string values (secrets redacted)."""
    out = {}
    for key, value in flatten(redact(raw)).items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        out[key] = text[:_PARAM_MAX]
    return out


__all__ = ["FINISHED", "STATE_FILE", "Terminated", "Tracking"]
