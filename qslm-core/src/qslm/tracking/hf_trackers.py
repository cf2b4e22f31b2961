"""TensorBoard, Weights & Biases and trackio: the Hugging Face Trainer's own integrations
(``report_to``) log the training steps; these components add qslm's stage metrics, tags and
run status to the same run. Each library comes with a ``qslm-core`` extra."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from qslm.components import Options
from qslm.tracking.base import FINISHED, Tracker

if TYPE_CHECKING:
    from qslm.context import RunContext


def _run_name(ctx: RunContext, run_id: str | None) -> str:
    # the staging folder's suffix is unique per run and survives --resume
    return run_id or f"{ctx.config.name}-{ctx.build_dir.name.rsplit('-', 1)[-1]}"


def _folder(ctx: RunContext, option: str | None, default: str) -> Path:
    output = (ctx.config.output or Path.cwd() / "builds").absolute()
    return Path(option).expanduser().absolute() if option else output / default


class TensorBoardOptions(Options):
    log_dir: str | None = Field(
        default=None,
        description=(
            "Where event files go (one folder a run); default ``OUTPUT/tensorboard/NAME``."
        ),
    )


class TensorBoardTracker(Tracker):
    """TensorBoard event files: the Trainer's TensorBoard callback writes the steps; the
    evaluators' metrics, tags and status are added to the same folder."""

    Options = TensorBoardOptions
    requires = ("tensorboard",)
    extra = "tensorboard"
    report_to = "tensorboard"

    def start(self, ctx: RunContext, run_id: str | None) -> str:
        assert isinstance(self.options, TensorBoardOptions)
        self.run_id = _run_name(ctx, run_id)
        base = _folder(ctx, self.options.log_dir, f"tensorboard/{ctx.config.name}")
        self.log_dir = base / self.run_id
        self.log_dir.mkdir(parents=True, exist_ok=True)
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(self.log_dir)  # read by the Trainer's callback
        self._writer: Any = None
        self.last_step = 0
        return self.run_id

    def _w(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.log_dir))
        return self._writer

    def record(self) -> dict[str, Any]:
        return {"log_dir": str(self.log_dir)}

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self._w().add_scalar(key.replace(".", "/"), value, step or 0)
        self._w().flush()

    def set_tags(self, tags: dict[str, str]) -> None:
        rows = "\n".join(f"| {k} | {v} |" for k, v in tags.items())
        self._w().add_text("qslm/tags", "| tag | value |\n|---|---|\n" + rows)

    def end(self, status: str) -> None:
        self._w().add_text("qslm/status", status)
        self._w().close()
        self._writer = None


class WandbOptions(Options):
    project: str | None = Field(
        default=None, description="The W&B project; default: the pipeline's name."
    )
    mode: Literal["offline", "online", "disabled"] = Field(
        default="offline",
        description=(
            "``offline`` (the default) writes the run under ``dir`` with no network; "
            "``wandb sync`` uploads it later."
        ),
    )
    dir: str | None = Field(
        default=None, description="Where W&B keeps its files; default ``OUTPUT/wandb``."
    )
    entity: str | None = None


class WandbTracker(Tracker):
    """Weights & Biases, offline unless ``mode = "online"``: qslm opens the run, the
    Trainer's W&B callback logs the steps into it, qslm adds the stage metrics (as the run's
    summary), tags, artifacts and exit status."""

    Options = WandbOptions
    requires = ("wandb",)
    extra = "wandb"
    report_to = "wandb"

    def start(self, ctx: RunContext, run_id: str | None) -> str:
        o = self.options
        assert isinstance(o, WandbOptions)
        folder = _folder(ctx, o.dir, "wandb")
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["WANDB_MODE"] = o.mode  # the Trainer's callback and wandb's service read it
        os.environ["WANDB_DIR"] = str(folder)
        import wandb

        self.run = wandb.init(
            project=o.project or ctx.config.name,
            entity=o.entity,
            dir=str(folder),
            mode=o.mode,
            id=run_id,
            resume="allow" if run_id else None,
            name=ctx.config.name,
        )
        self.folder = folder
        return self.run.id

    def record(self) -> dict[str, Any]:
        return {"mode": self.run.settings.mode, "dir": str(self.run.dir)}

    def log_params(self, params: dict[str, str]) -> None:
        self.run.config.update({"qslm": params}, allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.run.summary.update(metrics)  # W&B steps must grow; the Trainer owns them

    def set_tags(self, tags: dict[str, str]) -> None:
        self.run.tags = (*self.run.tags, tags.get("qslm.build", "")[:64])
        self.run.config.update({"qslm_tags": tags}, allow_val_change=True)

    def log_artifacts(self, files: list[tuple[Path, str]]) -> None:
        import wandb

        artifact = wandb.Artifact(f"{self.run.project}-build", type="qslm-build")
        for path, folder in files:
            if path.is_dir():
                artifact.add_dir(str(path), name=f"{folder}/{path.name}")
            else:
                artifact.add_file(str(path), name=f"{folder}/{path.name}")
        self.run.log_artifact(artifact)

    def end(self, status: str) -> None:
        import wandb

        self.run.finish(exit_code=0 if status == FINISHED else 1)
        # finish() returns before wandb's service has written the last records of the run
        # file; teardown waits for it (measured: the summary was missing without it)
        wandb.teardown()


class TrackioOptions(Options):
    project: str | None = Field(
        default=None, description="The trackio project; default: the pipeline's name."
    )
    dir: str | None = Field(
        default=None,
        description=(
            "trackio's local database folder (``TRACKIO_DIR``); default ``OUTPUT/trackio``."
            " trackio reads it once per process: where it was imported before, its folder "
            "stays (the manifest records the one used)."
        ),
    )


class TrackioTracker(Tracker):
    """trackio, local: the Trainer's trackio callback logs the steps into the run named after
    this one; qslm reopens that run afterwards for the stage metrics."""

    Options = TrackioOptions
    requires = ("trackio",)
    extra = "trackio"
    report_to = "trackio"

    def start(self, ctx: RunContext, run_id: str | None) -> str:
        o = self.options
        assert isinstance(o, TrackioOptions)
        folder = _folder(ctx, o.dir, "trackio")
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["TRACKIO_DIR"] = str(folder)  # read once, when trackio is first imported
        import trackio.utils

        self.folder = Path(trackio.utils.TRACKIO_DIR)  # (where it logs if imported before)
        self.project = o.project or ctx.config.name
        self.run_id = _run_name(ctx, run_id)
        return self.run_id

    def trainer_arguments(self) -> dict[str, Any]:
        """The Trainer's trackio callback names its run from these."""
        return {"project": self.project, "run_name": self.run_id}

    def record(self) -> dict[str, Any]:
        return {"project": self.project, "dir": str(self.folder)}

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import trackio

        trackio.init(project=self.project, name=self.run_id, resume="allow", embed=False)
        trackio.log(metrics)
        trackio.finish()

    def end(self, status: str) -> None:
        pass  # trackio runs have no status; the Trainer's callback closed the run
