"""The tracker component kind: what an experiment tracker does for one ``qslm run``."""

from __future__ import annotations

import importlib.util
import json
import math
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from qslm.components import Component
from qslm.errors import ConfigError

if TYPE_CHECKING:
    from qslm.context import RunContext

FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"
STATE_FILE = "tracking.json"  # in a staging folder: the run to continue on --resume
# what a build logs as artifacts besides the manifest and the weights (folders go whole)
ARTIFACTS = ("metrics.json", "report.md", "report", "train_log.jsonl", "select.json")


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool): what a tracker takes as a metric."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def read_state(staging: Path) -> dict[str, Any]:
    """The tracking state a run left in its staging folder (``{}`` when none)."""
    try:
        state = json.loads((staging / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


class Tracker(Component):
    """Records one run in a tracking service: parameters, step and stage metrics, tags,
    artifacts, and how the run ended.

    The session (:mod:`qslm.tracking.session`) calls these methods and catches what they
    raise, so an implementation may let any error out: it is reported once and tracking stops
    for the rest of the run, never the run itself.
    """

    requires: ClassVar[tuple[str, ...]] = ()
    """Importable modules the tracker needs; missing ones are a pre-flight error."""
    extra: ClassVar[str] = ""
    """The ``qslm-core`` extra that installs them (for the error message)."""
    report_to: ClassVar[str | None] = None
    """The Hugging Face Trainer integration that logs the training steps (``report_to``);
    None when the tracker logs the steps itself from qslm's callback."""

    def plan(self) -> list[str]:
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            extra = f"qslm-core[{self.extra}]" if self.extra else " ".join(missing)
            raise ConfigError(
                f"track.backend: this tracker needs {', '.join(missing)}, which is not "
                f"installed: pip install '{extra}'"
            )
        return []

    @abstractmethod
    def start(self, ctx: RunContext, run_id: str | None) -> str:
        """Open a run for ``ctx`` (or reopen ``run_id``, a run this pipeline began before a
        kill); returns the run's id."""

    def record(self) -> dict[str, Any]:
        """What the manifest and the staging folder keep about the run besides its id (e.g. the
        tracking URI, without credentials)."""
        return {}

    def log_params(self, params: dict[str, str]) -> None:
        """Record the resolved configuration (dotted keys)."""

    @abstractmethod
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Record metrics, at a training step or (``step=None``) for the whole run."""

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set the run's tags (the build, data hash, versions)."""

    def log_artifacts(self, files: list[tuple[Path, str]]) -> None:
        """Upload ``(local file or folder, folder in the run)`` pairs."""

    def register(self, build: str, version: int) -> dict[str, Any] | None:
        """Register the build in the tracker's model registry, if configured; the record."""
        return None

    @abstractmethod
    def end(self, status: str) -> None:
        """End the run: ``FINISHED``, ``FAILED`` or ``KILLED``."""

    # --- on a recorded run, from another process (``qslm builds clean`` / ``promote``) ---

    def mark_killed(self, record: dict[str, Any]) -> bool:
        """End a run whose process was SIGKILLed; False when the tracker has no run status."""
        return False

    def promote(self, record: dict[str, Any]) -> str | None:
        """Point the registry's alias at the build of ``record``; a line saying what moved."""
        return None
