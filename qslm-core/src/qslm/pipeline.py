"""Runs the stages of a pipeline: data -> [select] -> train -> evaluate -> build."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qslm.builds import BuildStore, claim_interrupted, lock_staging, write_run_state
from qslm.components import AttentionBackend, DataSource, Trainer
from qslm.config import PipelineConfig
from qslm.context import RunContext, _stderr_progress
from qslm.errors import QslmError
from qslm.launch import Launch
from qslm.plugins import Registry
from qslm.stages.data import run_data_stage
from qslm.stages.evaluate import run_evaluate_stage
from qslm.stages.publish import build_manifest, publish_build
from qslm.stages.select import run_select_stage
from qslm.stages.train import run_train_stage


def plan(config: PipelineConfig) -> list[dict[str, Any]]:
    """Pre-flight every component: the plan ``qslm validate`` prints, one entry a component."""
    entries = []
    for ref in [*config.components(), *([config.track] if config.track else [])]:
        try:
            notes = ref.create().plan()
        except QslmError as exc:
            raise type(exc)(f"{config.path.name}: {exc}") from None
        entries.append(
            {
                "key": ref.key,
                "name": ref.spec.name,
                "distribution": ref.spec.distribution,
                "notes": notes,
            }
        )
    from qslm.preflight import check_output, check_resources

    check_output(config)  # the same checks as the run's: what validates, runs
    check_resources(config)
    return entries


def run_pipeline(
    config: PipelineConfig,
    registry: Registry,
    *,
    progress: Callable[[str], None] = _stderr_progress,
    resume: bool = False,
    launch: Launch | None = None,
) -> Path:
    """Run every stage and publish the build; returns the new ``vN`` folder.

    The build is assembled in a staging folder; on any failure it is removed and no version
    appears. Earlier builds are never touched. A run killed without a chance to clean up
    (SIGKILL, power cut) leaves its staging folder, which ``resume=True`` continues from the
    newest complete training checkpoint. ``launch`` runs the training stage in several
    processes (``qslm run --nproc N``).
    """
    from qslm.tracking import KILLED, Tracking

    tracking = Tracking.for_config(config, progress)  # a missing extra stops us here
    output = config.output or (Path.cwd() / "builds")
    store = BuildStore(output, config.name)
    started = time.time()
    if resume:
        claimed = claim_interrupted(store, config.raw)
        staging, lock = claimed.path, claimed.lock
        state = claimed.state or {}
        progress(
            f"resuming the run of {state.get('started', '?')} (pid {state.get('pid', '?')}) "
            f"in {staging}"
        )
    else:
        staging = store.create_staging()
        lock = lock_staging(staging)
        assert lock is not None  # a folder just made with a fresh uuid has no other owner
    ctx = RunContext(
        config=config,
        registry=registry,
        build_dir=staging,
        seed=config.seed,
        progress=progress,
        resume=resume,
    )
    tracking.start(ctx)  # never raises: a failing tracker warns and the run goes on
    try:
        write_run_state(staging, name=config.name, pipeline=config.path, raw=config.raw)
        if resume:
            _prepare_resume(ctx)
        manifest = _run_stages(ctx, config, launch)
        manifest["timings"] = {**ctx.timings, "total_s": round(time.time() - started, 3)}
        build = publish_build(store, staging, manifest, tracking, progress)
        return build
    except KeyboardInterrupt:
        tracking.end(KILLED)  # Ctrl-C or SIGTERM; --resume reopens the same run
        if ctx.latest_checkpoint() is not None:
            progress(
                f"interrupted; the run can go on from {ctx.latest_checkpoint().name}: "
                f"qslm run {config.path.name} --resume (with the same --set options)"
            )
        else:
            store.discard(staging)
        raise
    except Exception as exc:
        from qslm.preflight import disk_full_error
        from qslm.resources import is_disk_full

        tracking.end("FAILED")
        if not is_disk_full(exc):
            store.discard(staging)
            raise
        raise disk_full_error(ctx, lambda: store.discard(staging)) from exc
    except BaseException:
        tracking.end("FAILED")
        store.discard(staging)
        raise
    finally:
        tracking.close()
        lock.close()


def _prepare_resume(ctx: RunContext) -> None:
    """Clean what the killed run left half-done and say where training goes on from."""
    removed = ctx.discard_incomplete_checkpoints()
    if removed:
        ctx.progress(f"  removed half-written {', '.join(removed)}")
    checkpoint = ctx.latest_checkpoint()
    if checkpoint is None:
        ctx.progress("  no complete checkpoint: training starts again from step 0")
    else:
        ctx.progress(f"  training goes on from {checkpoint.name}")
    ctx.manifest["resumed"] = {
        "checkpoint": checkpoint.name if checkpoint else None,
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    ctx.log_event("resume", checkpoint=checkpoint.name if checkpoint else None)


def _run_stages(ctx: RunContext, config: PipelineConfig, launch: Launch | None) -> dict[str, Any]:
    plan(config)  # pre-flight again: files may have changed since `qslm validate`
    source = config.data.create()
    attention = config.attention.create()
    trainer = config.train.create()
    assert isinstance(source, DataSource) and isinstance(trainer, Trainer)
    assert isinstance(attention, AttentionBackend)

    data = run_data_stage(ctx, source)
    if config.select is not None:
        with ctx.stage("select"):
            data = run_select_stage(ctx, config.select, data)
    artifact = run_train_stage(ctx, trainer, attention, data, launch)
    metrics = run_evaluate_stage(ctx, config.evaluators, artifact, data)
    return build_manifest(ctx, config, artifact, metrics)
