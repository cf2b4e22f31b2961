"""The build being exported: resolved, checked, and described (full model or adapter + base)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qslm.builds import read_manifest, resolve_build
from qslm.errors import ConfigError


@dataclass
class ExportSource:
    """A build to export: its folder, manifest and artifact."""

    path: Path
    manifest: dict[str, Any]
    artifact: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.artifact.get("kind", "full")

    @property
    def model_dir(self) -> Path:
        return self.path / self.artifact["model_dir"]

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / (self.artifact.get("tokenizer_dir") or self.artifact["model_dir"])

    @property
    def label(self) -> str:
        name, version = self.manifest.get("name"), self.manifest.get("version")
        return f"{name}@{version}" if name and version else str(self.path)

    @property
    def quantization(self) -> dict[str, Any]:
        """How the adapter's base was loaded in training (``{}``: full precision)."""
        ref = self.artifact.get("reference") or {}
        if ref.get("quantization", "none") == "none":
            return {}
        return {k: ref[k] for k in ("quantization", "compute_dtype", "double_quant") if k in ref}

    def training_option(self, key: str, default: Any = None) -> Any:
        """A ``[train.options]`` value of the pipeline that made the build."""
        config = (self.manifest.get("pipeline") or {}).get("config") or {}
        return ((config.get("train") or {}).get("options") or {}).get(key, default)

    def data_option(self, key: str, default: Any = None) -> Any:
        config = (self.manifest.get("pipeline") or {}).get("config") or {}
        return ((config.get("data") or {}).get("options") or {}).get(key, default)


def resolve_source(spec: str, builds: Path) -> ExportSource:
    """The build named by ``spec`` (a folder or NAME@vN), or a ConfigError saying what is wrong:
    no such build, not a build, a missing folder, an adapter whose base is gone."""
    path = Path(spec)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{spec}: not a qslm build (a file, not a build folder)")
    if path.is_dir() and not (path / "manifest.json").is_file():
        raise ConfigError(f"{spec}: not a qslm build (no manifest.json in the folder)")
    if not path.exists() and "@" not in spec and ("/" in spec or spec.startswith(".")):
        raise ConfigError(f"{spec}: no such build (the folder does not exist)")
    build = resolve_build(spec, builds)
    manifest = read_manifest(build)
    where = build / "manifest.json"
    artifact = manifest.get("artifact")
    if not isinstance(artifact, dict) or not artifact.get("model_dir"):
        raise ConfigError(f"{where}: no artifact.model_dir; this build has no model to export")
    kind = artifact.get("kind", "full")
    if kind not in ("full", "adapter"):
        raise ConfigError(f"{where}: artifact.kind is {kind!r}; qslm exports 'full' or 'adapter'")
    source = ExportSource(path=build, manifest=manifest, artifact=artifact)
    for folder in {source.model_dir, source.tokenizer_dir}:
        if not folder.is_dir():
            raise ConfigError(f"{build}: the build's folder {folder.name!r} is missing")
    if kind == "adapter":
        _check_base(source, where)
    return source


def _check_base(source: ExportSource, where: Path) -> None:
    from qslm.train.base_model import resolve_base

    base = source.artifact.get("base_model")
    if not base:
        raise ConfigError(f"{where}: an adapter build needs artifact.base_model")
    try:
        resolve_base(str(base), source.path, "artifact.base_model")
    except ConfigError as exc:
        raise ConfigError(f"{where}: the adapter's base cannot be found: {exc}") from None
