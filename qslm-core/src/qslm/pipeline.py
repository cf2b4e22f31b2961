"""Runs the stages of a pipeline: data -> [select] -> train -> evaluate -> build."""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from qslm import __version__
from qslm.builds import BuildStore, redact, write_json
from qslm.components import AttentionBackend, DataSource, Evaluator, Trainer
from qslm.config import PipelineConfig
from qslm.context import RunContext, _stderr_progress
from qslm.errors import QslmError
from qslm.plugins import Registry

_LIBRARIES = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "accelerate",
    "peft",
    "numpy",
    "pydantic",
    "pluggy",
    "dimod",
    "dwave-samplers",
    "qiskit",
)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a build (read from metadata, nothing imported)."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def plan(config: PipelineConfig) -> list[dict[str, Any]]:
    """Pre-flight every component: the plan ``qslm validate`` prints, one entry a component."""
    entries = []
    for ref in config.components():
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
    return entries


def run_pipeline(
    config: PipelineConfig,
    registry: Registry,
    *,
    progress: Callable[[str], None] = _stderr_progress,
) -> Path:
    """Run every stage and publish the build; returns the new ``vN`` folder.

    The build is assembled in a staging folder; on any failure it is removed and no version
    appears. Earlier builds are never touched.
    """
    output = config.output or (Path.cwd() / "builds")
    store = BuildStore(output, config.name)
    staging = store.create_staging()
    started = time.time()
    ctx = RunContext(
        config=config, registry=registry, build_dir=staging, seed=config.seed, progress=progress
    )
    try:
        manifest = _run_stages(ctx, config)
        manifest["timings"] = {**ctx.timings, "total_s": round(time.time() - started, 3)}
        return store.publish(staging, manifest)
    except BaseException:
        store.discard(staging)
        raise


def _run_stages(ctx: RunContext, config: PipelineConfig) -> dict[str, Any]:
    plan(config)  # pre-flight again: files may have changed since `qslm validate`
    source = config.data.create()
    attention = config.attention.create()
    trainer = config.train.create()
    assert isinstance(source, DataSource) and isinstance(trainer, Trainer)
    assert isinstance(attention, AttentionBackend)

    with ctx.stage("data"):
        data = source.load(ctx)
        ctx.progress(
            f"  {len(data.train)} training and {len(data.validation)} validation "
            f"records, sha256 {data.sha256[:12]}"
        )
    ctx.manifest["data"] = {
        "sha256": data.sha256,
        "train_records": len(data.train),
        "validation_records": len(data.validation),
        **data.info,
    }

    if config.select is not None:
        from qslm.qubo.select import run_select_stage

        with ctx.stage("select"):
            data = run_select_stage(ctx, config.select, data)

    with ctx.stage("train"):
        artifact = trainer.train(ctx, data, attention)

    metrics: dict[str, Any] = {}
    with ctx.stage("evaluate"):
        for ref in config.evaluators:
            evaluator = ref.create()
            assert isinstance(evaluator, Evaluator)
            result = evaluator.evaluate(ctx, artifact, data)
            metrics[ref.spec.name] = result
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in result.items())
            ctx.progress(f"  {ref.spec.name}: {shown}")
    if artifact.metrics:
        metrics["train"] = artifact.metrics
    write_json(ctx.build_dir / "metrics.json", metrics)

    pipeline_text = config.path.read_bytes()
    return {
        "qslm_manifest": 1,
        "name": config.name,
        "description": config.description,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seed": config.seed,
        "pipeline": {
            "file": str(config.path),
            "sha256": hashlib.sha256(pipeline_text).hexdigest(),
            "config": redact(config.raw),
        },
        "components": {ref.key: ref.describe() for ref in config.components()},
        "artifact": {
            "model_dir": artifact.model_dir,
            "tokenizer_dir": artifact.tokenizer_dir,
            "kind": artifact.kind,
            "base_model": artifact.base_model,
            "reference": artifact.reference,
        },
        "metrics": metrics,
        "versions": {
            **library_versions(),
            "qslm-core": __version__,
            "plugins": {
                name: {"distribution": dist, "version": version}
                for name, (dist, version) in sorted(ctx.registry.plugins.items())
            },
        },
        **redact(ctx.manifest),
    }


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
