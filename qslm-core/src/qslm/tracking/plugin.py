"""Registers the built-in trackers (each needs its own ``qslm-core`` extra)."""

from qslm.hookspecs import hookimpl


@hookimpl
def qslm_register_trackers(register):
    register(
        "mlflow",
        "qslm.tracking.mlflow_tracker:MlflowTracker",
        summary="MLflow: local SQLite store or a server; params, metrics, artifacts, registry",
    )
    register(
        "tensorboard",
        "qslm.tracking.hf_trackers:TensorBoardTracker",
        summary="TensorBoard event files (the Trainer's integration + stage metrics)",
    )
    register(
        "wandb",
        "qslm.tracking.hf_trackers:WandbTracker",
        summary="Weights & Biases, offline by default (the Trainer's integration + stage metrics)",
    )
    register(
        "trackio",
        "qslm.tracking.hf_trackers:TrackioTracker",
        summary="trackio, local (the Trainer's integration + stage metrics)",
    )
