"""MLflow: one MLflow run per ``qslm run``, in a local store by default or on a server."""

from __future__ import annotations

import os
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from qslm.components import Options
from qslm.secrets import strip_credentials
from qslm.tracking.base import KILLED, Tracker

if TYPE_CHECKING:
    from qslm.context import RunContext

LOCAL_STORE = "mlflow.db"  # beside the pipelines' folders in the output folder
LOCAL_ARTIFACTS = "mlartifacts"
_BATCH = 100  # MLflow's limit on params (and tags) in one log_batch call


class MlflowOptions(Options):
    tracking_uri: str | None = Field(
        default=None,
        description=(
            "Where runs go: an MLflow server (``http://host:5000``) or any MLflow store "
            "URI. Default: a local SQLite store, ``OUTPUT/mlflow.db`` (MLflow 3's own "
            "default store kind), with artifacts in ``OUTPUT/mlartifacts``; no server "
            "needed."
        ),
    )
    experiment: str | None = Field(
        default=None, description="The MLflow experiment; default: the pipeline's name."
    )
    log_weights: bool = Field(
        default=False,
        description=(
            "Upload the model and tokenizer folders too (the manifest, metrics, report, "
            "plots and training log always go)."
        ),
    )
    register_model: str | None = Field(
        default=None,
        description=(
            "Register each build as a version of this registered model (``qslm builds "
            "promote`` then moves ``alias`` to the promoted build's version)."
        ),
    )
    alias: str = Field(
        default="champion",
        pattern="^[A-Za-z_][A-Za-z0-9_-]*$",
        description="The registry alias that follows ``NAME@current``.",
    )
    timeout_s: int = Field(
        default=10,
        gt=0,
        description=(
            "HTTP timeout of one request to a server (``MLFLOW_HTTP_REQUEST_TIMEOUT`` wins)."
        ),
    )
    retries: int = Field(
        default=1,
        ge=0,
        description=(
            "Retries of a failed request (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` wins); "
            "MLflow's own default of 7 with backoff waits minutes for a server that is "
            "down."
        ),
    )


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """``http://user:pass@host`` -> ``("http://host", user, pass)``."""
    parts = urllib.parse.urlsplit(uri)
    if not parts.username and not parts.password:
        return uri, None, None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    clean = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    return clean, user, password


def _prepare_environment(options: MlflowOptions, user: str | None, password: str | None) -> None:
    # MLflow reads these at each request; a user's own settings are kept.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(options.timeout_s))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(options.retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    # credentials from the URI go where MLflow's client looks for them, so the URI MLflow
    # holds (and may print in an error) has none
    if user is not None:
        os.environ.setdefault("MLFLOW_TRACKING_USERNAME", user)
    if password is not None:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", password)


class MlflowTracker(Tracker):
    """MLflow tracking: params (the resolved configuration), step and stage metrics, tags,
    artifacts, run status, and optionally a registered model version per build."""

    Options = MlflowOptions
    requires = ("mlflow",)
    extra = "mlflow"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.uri: str | None = None
        self.run_id: str | None = None
        self.experiment: str | None = None
        self._client: Any = None

    def _connect(self, uri: str) -> Any:
        clean, user, password = split_credentials(uri)
        assert isinstance(self.options, MlflowOptions)
        _prepare_environment(self.options, user, password)
        from mlflow import MlflowClient

        self.uri = clean
        self._client = MlflowClient(tracking_uri=clean, registry_uri=clean)
        return self._client

    def start(self, ctx: RunContext, run_id: str | None) -> str:
        o = self.options
        assert isinstance(o, MlflowOptions)
        output = (ctx.config.output or Path.cwd() / "builds").absolute()
        local = o.tracking_uri is None
        uri = o.tracking_uri or f"sqlite:///{output / LOCAL_STORE}"
        client = self._connect(uri)
        if run_id is not None:
            from mlflow.exceptions import MlflowException

            try:
                client.update_run(run_id, status="RUNNING")
                self.run_id = run_id
                return run_id
            except MlflowException:
                ctx.progress(f"  tracking: run {run_id} is gone from {self.uri}; a new run")
        self.experiment = name = o.experiment or ctx.config.name
        artifacts = (output / LOCAL_ARTIFACTS).as_uri() if local else None
        experiment = _experiment_id(client, name, artifacts)
        run = client.create_run(
            experiment,
            run_name=f"{ctx.config.name} {time.strftime('%Y-%m-%d %H:%M:%S')}",
            tags={"qslm.pipeline": ctx.config.name, "qslm.staging": ctx.build_dir.name},
        )
        self.run_id = run.info.run_id
        return self.run_id

    def record(self) -> dict[str, Any]:
        return {"tracking_uri": strip_credentials(self.uri or ""), "experiment": self.experiment}

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k[:250], v) for k, v in params.items()]
        for i in range(0, len(items), _BATCH):
            self._client.log_batch(self.run_id, params=items[i : i + _BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step or 0) for k, v in metrics.items()]
        for i in range(0, len(items), 1000):  # MLflow's limit on metrics in one batch
            self._client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in tags.items()]
        if "qslm.build" in tags:  # the run is named after its build once the build exists
            items.append(RunTag("mlflow.runName", tags["qslm.build"]))
        for i in range(0, len(items), _BATCH):
            self._client.log_batch(self.run_id, tags=items[i : i + _BATCH])

    def log_artifacts(self, files: list[tuple[Path, str]]) -> None:
        for path, folder in files:
            if path.is_dir():
                self._client.log_artifacts(self.run_id, str(path), folder)
            else:
                self._client.log_artifact(self.run_id, str(path), folder)

    def register(self, build: str, version: int) -> dict[str, Any] | None:
        o = self.options
        assert isinstance(o, MlflowOptions)
        if not o.register_model:
            return None
        from mlflow.exceptions import MlflowException

        try:
            self._client.create_registered_model(o.register_model)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        mv = self._client.create_model_version(
            o.register_model,
            source=f"runs:/{self.run_id}/build",
            run_id=self.run_id,
            tags={"qslm.build": build},
            description=f"qslm build {build}",
        )
        return {"model": o.register_model, "version": str(mv.version), "alias": o.alias}

    def end(self, status: str) -> None:
        self._client.set_terminated(self.run_id, status)

    def mark_killed(self, record: dict[str, Any]) -> bool:
        client = self._connect(record["tracking_uri"])
        if client.get_run(record["run_id"]).info.status in ("RUNNING", "SCHEDULED"):
            client.set_terminated(record["run_id"], KILLED)
        return True

    def promote(self, record: dict[str, Any]) -> str | None:
        reg = record["registry"]
        client = self._connect(record["tracking_uri"])
        client.set_registered_model_alias(reg["model"], reg["alias"], reg["version"])
        return f"  mlflow: {reg['model']}@{reg['alias']} -> version {reg['version']}"


def _experiment_id(client: Any, name: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:  # another run made it in the meantime
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id
