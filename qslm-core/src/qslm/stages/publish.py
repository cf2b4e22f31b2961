"""The publish stage: the manifest (resolved config, versions, seeds, data hashes, timings),
the report, and the atomic rename of the staging folder to the next ``vN``."""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qslm import __version__
from qslm.builds import RUN_LOCK, RUN_STATE, BuildStore, redact
from qslm.components import Artifact

if TYPE_CHECKING:
    from qslm.config import PipelineConfig
    from qslm.context import RunContext
    from qslm.tracking import Tracking

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


def build_manifest(
    ctx: RunContext, config: PipelineConfig, artifact: Artifact, metrics: dict[str, Any]
) -> dict[str, Any]:
    """``manifest.json`` of the build, without its timings (the run adds them last)."""
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


def publish_build(
    store: BuildStore,
    staging: Path,
    manifest: dict[str, Any],
    tracking: Tracking,
    progress: Callable[[str], None],
) -> Path:
    """Report, then rename the staging folder to the next version; returns that folder."""
    from qslm.report import report_or_warn

    report_or_warn(staging, manifest, progress)  # report.md and plots; never fails a run
    # run.json goes just before the rename: a resume that finds the folder then skips it
    (staging / RUN_STATE).unlink(missing_ok=True)
    tracking.before_publish(manifest)
    build = store.publish(staging, manifest)
    (build / RUN_LOCK).unlink(missing_ok=True)
    tracking.finish(build, manifest)
    return build
