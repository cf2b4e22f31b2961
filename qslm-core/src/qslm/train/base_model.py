"""Finding the base model a fine-tuning trainer starts from, cheaply and before any training.

A base is named by one string: a local model folder, a qslm build folder (its ``manifest.json``
says where the model is), or a Hugging Face Hub name. Everything here is pure Python plus
``huggingface_hub`` (for the cache lookup of a Hub name), so ``qslm validate`` can check a
pipeline without importing torch. Module names come from the safetensors header, which is a
JSON document at the start of the file: reading it costs a few kilobytes, not the weights.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from qslm.errors import ConfigError

# What a Hub model id looks like ("name" or "owner/name"); anything else is a path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True)
class BaseModel:
    """A resolved base model: ``source`` is what ``from_pretrained`` gets (an absolute folder,
    or a Hub name found in the local cache); ``folder`` is where its files are on disk."""

    source: str
    folder: Path
    origin: str  # "folder", "build" or "hub"

    def module_names(self) -> set[str] | None:
        """Names of the modules that hold weights (``model.layers.0.self_attn.q_proj``), from
        the safetensors header or index; None when the weights are not in safetensors."""
        return weight_module_names(self.folder)


def resolve_base(value: str, base_dir: Path, key: str) -> BaseModel:
    """Resolve ``value`` (the option at ``key``) to a base model, or raise a ConfigError that
    says what was looked for and where."""
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if path.exists():
        return _local(path.resolve(), value, key)
    if "@" in value:
        return _local(build_by_version(value, base_dir, key).resolve(), value, key)
    if _HUB_ID.match(value) and not value.startswith((".", "~")):
        return _hub(value, key, looked_at=path)
    raise ConfigError(f"{key}: the base model folder {value!r} does not exist (looked at {path})")


def build_by_version(value: str, base_dir: Path, key: str) -> Path:
    """``builds/NAME@vN`` (or ``@latest``, ``@current``): a build picked by version from the
    builds folder before the ``/`` (relative to the pipeline file), so a pipeline can start
    from whatever build another pipeline last made."""
    from qslm.builds import resolve_build

    folder, _, version = value.rpartition("@")
    where = Path(folder).expanduser()
    where = where if where.is_absolute() else base_dir / where
    try:
        return resolve_build(f"{where.name}@{version}", where.parent)
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _local(path: Path, value: str, key: str) -> BaseModel:
    if not path.is_dir():
        raise ConfigError(f"{key}: {value!r} is a file; name the folder of a model or a build")
    manifest = path / "manifest.json"
    if manifest.is_file() and not (path / "config.json").is_file():
        return _from_build(path, manifest, key)
    _check_model_folder(path, key)
    return BaseModel(source=str(path), folder=path, origin="folder")


def _from_build(build: Path, manifest_path: Path, key: str) -> BaseModel:
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        artifact = manifest["artifact"]
        model_dir = artifact["model_dir"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{key}: {manifest_path} is not a qslm build manifest with artifact.model_dir ({exc})"
        ) from None
    if artifact.get("kind", "full") != "full":
        merged = build / "merged"
        if (merged / "config.json").is_file():
            _check_model_folder(merged, key)
            return BaseModel(source=str(merged), folder=merged, origin="build")
        raise ConfigError(
            f"{key}: the build {build} holds an adapter, not a full model; train on its base "
            f"({artifact.get('base_model')}) or rebuild it with train.options.merge = true"
        )
    folder = (build / model_dir).resolve()
    _check_model_folder(folder, key)
    return BaseModel(source=str(folder), folder=folder, origin="build")


def _check_model_folder(path: Path, key: str) -> None:
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"{key}: {path} holds no config.json: not a transformers model folder or qslm build"
        )
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise ConfigError(
            f"{key}: {path} holds no tokenizer (none of {', '.join(_TOKENIZER_FILES)})"
        )


def _hub(name: str, key: str, looked_at: Path) -> BaseModel:
    """A Hub name is used only from the local cache: a run must not start downloading weights
    it cannot finish offline, so a name that is not cached fails here, before any work."""
    from huggingface_hub import constants, try_to_load_from_cache

    config = try_to_load_from_cache(name, "config.json")
    if isinstance(config, str):
        return BaseModel(source=name, folder=Path(config).parent, origin="hub")
    offline = constants.HF_HUB_OFFLINE or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    why = "HF_HUB_OFFLINE is set" if offline else "qslm loads Hub models from the local cache only"
    raise ConfigError(
        f"{key}: {name!r} is not a local folder (looked at {looked_at}) and the Hub model "
        f"{name!r} is not available offline: it is not in the Hugging Face cache "
        f"({constants.HF_HUB_CACHE}; {why}). Download it first, e.g. `hf download {name}`, "
        "or name a local model folder."
    )


def weight_module_names(folder: Path) -> set[str] | None:
    """Names of the modules with a 2-D ``weight`` (linear layers and embeddings: what LoRA can
    wrap) in ``folder``'s safetensors file(s), or None if there are none. Reads only the JSON
    headers, never the tensors."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        files = [folder / name for name in sorted(set(weight_map.values()))]
    else:
        files = [folder / "model.safetensors"]
    if not all(f.is_file() for f in files):
        return None
    names: set[str] = set()
    for f in files:
        for key, info in _safetensors_header(f).items():
            if key.endswith(".weight") and len(info.get("shape", ())) == 2:
                names.add(key.removesuffix(".weight"))
    return names


def _safetensors_header(path: Path) -> dict:
    # The safetensors format: an 8-byte little-endian header length, then a JSON header.
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    return header


def unknown_targets(targets: list[str], modules: set[str]) -> list[str]:
    """The entries of ``targets`` that match no module the way peft matches them (the module's
    name equals the entry or ends with ``.entry``)."""
    return [t for t in targets if not any(m == t or m.endswith("." + t) for m in modules)]


def target_choices(modules: set[str]) -> list[str]:
    """The distinct short names a user can put in ``target_modules`` (``q_proj``, ``up_proj``)."""
    return sorted({m.rsplit(".", 1)[-1] for m in modules})
