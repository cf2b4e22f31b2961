"""Finding the base model a fine-tuning trainer starts from, cheaply and before any training.

A base is named by one string: a local model folder, a qslm build folder (its ``manifest.json``
says where the model is), or a Hugging Face Hub name. Everything here is pure Python plus
``huggingface_hub`` (the cache lookup, the commit a Hub name points to, the download on first
use), so ``qslm validate`` can check a pipeline without importing torch or downloading
weights. Module names come from the safetensors header, which is a JSON document at the start
of the file: reading it costs a few kilobytes, not the weights.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qslm.errors import ConfigError

# What a Hub model id looks like ("name" or "owner/name"); anything else is a path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True)
class BaseModel:
    """A resolved base model: ``source`` is what ``from_pretrained`` gets (an absolute folder;
    a Hub name only while its download is pending); ``folder`` is where its files are on disk
    (None until a Hub model is downloaded). Hub models also carry their ``repo`` name and the
    ``commit`` (40 hex digits) the weights come from."""

    source: str
    folder: Path | None
    origin: str  # "folder", "build" or "hub"
    repo: str | None = None
    commit: str | None = None
    files: tuple[str, ...] = ()  # the Hub repo's files, when a download is pending

    def module_names(self) -> set[str] | None:
        """Names of the modules that hold weights (``model.layers.0.self_attn.q_proj``), from
        the safetensors header or index; None when the weights are not in safetensors or not
        downloaded yet."""
        return weight_module_names(self.folder) if self.folder is not None else None

    def describe(self) -> str:
        """How the plan names this base: its source, and for the Hub the commit and whether it
        still has to be downloaded."""
        if self.origin != "hub":
            return f"{self.source} ({self.origin})"
        where = "cached" if self.folder is not None else "downloads on first use"
        return f"{self.repo} (hub, commit {self.commit[:12] if self.commit else '?'}, {where})"

    def hub_manifest(self, revision: str | None) -> dict[str, str | None] | None:
        """What a build records about a Hub base (None for other bases)."""
        if self.origin != "hub":
            return None
        return {"repo": self.repo, "revision": revision or "main", "commit": self.commit}


def resolve_base(
    value: str,
    base_dir: Path,
    key: str,
    *,
    revision: str | None = None,
    offline: bool = False,
    fetch: bool = False,
) -> BaseModel:
    """Resolve ``value`` (the option at ``key``) to a base model, or raise a ConfigError that
    says what was looked for and where. A Hub name is resolved to a commit (``revision``, a
    branch, tag or commit, default main) and, with ``fetch``, downloaded when not cached;
    ``offline`` (or ``HF_HUB_OFFLINE``) keeps it to the local cache."""
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if path.exists():
        return _local(path.resolve(), value, key)
    if "@" in value:
        return _local(build_by_version(value, base_dir, key).resolve(), value, key)
    if _HUB_ID.match(value) and not value.startswith((".", "~")):
        return _hub(value, key, path, revision=revision, offline=offline, fetch=fetch)
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


def _hub(
    name: str, key: str, looked_at: Path, *, revision: str | None, offline: bool, fetch: bool
) -> BaseModel:
    """A Hub name: from the cache when offline; online, the commit the revision points to now,
    downloaded (``fetch``) unless that snapshot is cached. Pre-flight (no ``fetch``) asks the
    Hub only for the commit and the file list, so a mistake fails before any download."""
    from qslm import hub

    cached = hub.cached_snapshot(name, revision)
    switched_off = offline or hub.offline()
    if switched_off:
        if cached is not None:
            return BaseModel(str(cached), cached, "hub", repo=name, commit=cached.name)
        _refuse_offline(name, key, looked_at, revision, offline)
    try:
        commit = hub.remote_commit(name, revision, "model", key)
    except hub.HubUnreachable:
        if cached is None:
            raise
        return BaseModel(str(cached), cached, "hub", repo=name, commit=cached.name)
    files = hub.wanted_files(hub.repo_files(name, commit, "model", key), "model")
    if "config.json" not in files:
        raise ConfigError(f"{key}: the Hub repo {name!r} holds no config.json: not a model")
    snapshot = hub.cached_snapshot(name, commit)
    if snapshot is not None and hub.is_complete(snapshot, files):
        return BaseModel(str(snapshot), snapshot, "hub", repo=name, commit=commit)
    pending = BaseModel(name, None, "hub", repo=name, commit=commit, files=tuple(files))
    return fetch_base(pending, key, revision) if fetch else pending


def fetch_base(base: BaseModel, key: str, revision: str | None) -> BaseModel:
    """``base`` with its files on disk: a Hub model whose download is pending is downloaded
    (into the Hugging Face cache); any other base is returned as it is."""
    if base.folder is not None or base.repo is None or base.commit is None:
        return base
    from qslm import hub

    folder = hub.download(base.repo, revision, base.commit, "model", key, list(base.files))
    _check_model_folder(folder, key)
    # the folder is named by its commit: main may have moved since pre-flight asked
    return BaseModel(str(folder), folder, "hub", repo=base.repo, commit=folder.name)


def _refuse_offline(
    name: str, key: str, looked_at: Path, revision: str | None, by_option: bool
) -> None:
    from huggingface_hub import constants

    why = (
        f"{key.rpartition('.')[0]}.offline is true"
        if by_option
        else "HF_HUB_OFFLINE is set (or qslm run --offline)"
    )
    at = f" at revision {revision!r}" if revision else ""
    raise ConfigError(
        f"{key}: {name!r} is not a local folder (looked at {looked_at}) and the Hub model "
        f"{name!r}{at} is not available offline: it is not in the Hugging Face cache "
        f"({constants.HF_HUB_CACHE}; {why}). Download it first, e.g. `hf download {name}`, "
        "go online, or name a local model folder."
    )


def weight_module_names(folder: Path) -> set[str] | None:
    """Names of the modules with a 2-D ``weight`` (linear layers and embeddings: what LoRA can
    wrap) in ``folder``'s safetensors file(s), or None if there are none. Reads only the JSON
    headers, never the tensors."""
    shapes = weight_shapes(folder)
    if shapes is None:
        return None
    return {
        key.removesuffix(".weight")
        for key, shape in shapes.items()
        if key.endswith(".weight") and len(shape) == 2
    }


def weight_shapes(folder: Path) -> dict[str, tuple[int, ...]] | None:
    """Every tensor's shape by name in ``folder``'s safetensors file(s) (sharded or not), or
    None if the weights are not all there in safetensors. Reads only the JSON headers."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        files = [folder / name for name in sorted(set(weight_map.values()))]
    else:
        files = [folder / "model.safetensors"]
    if not all(f.is_file() for f in files):
        return None
    return {
        key: tuple(info.get("shape", ()))
        for f in files
        for key, info in _safetensors_header(f).items()
    }


_MAX_HEADER = 100_000_000  # the safetensors library refuses longer headers too


def _safetensors_header(path: Path) -> dict:
    # The safetensors format: an 8-byte little-endian header length, then a JSON header.
    # A damaged file is the user's to fix: say which, rather than a MemoryError or a traceback.
    try:
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > _MAX_HEADER:
                raise ValueError(f"a header of {length} bytes")
            header = json.loads(f.read(length))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        entries = [v for k, v in header.items() if k != "__metadata__"]
        if not all(isinstance(v, dict) and _is_shape(v.get("shape", [])) for v in entries):
            raise ValueError("a tensor entry without a shape list")
    except (OSError, ValueError, struct.error) as exc:
        raise ConfigError(f"{path} is not a readable safetensors file ({exc})") from None
    header.pop("__metadata__", None)
    return header


def _is_shape(shape: object) -> bool:
    return isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)


def unknown_targets(targets: list[str], modules: set[str]) -> list[str]:
    """The entries of ``targets`` that match no module the way peft matches them (the module's
    name equals the entry or ends with ``.entry``)."""
    return [t for t in targets if not any(m == t or m.endswith("." + t) for m in modules)]


def target_choices(modules: set[str]) -> list[str]:
    """The distinct short names a user can put in ``target_modules`` (``q_proj``, ``up_proj``)."""
    return sorted({m.rsplit(".", 1)[-1] for m in modules})


def linear_module_names(model: Any) -> set[str]:
    """Names of the modules LoRA can wrap (linear layers, 4-bit ones included, embeddings)."""
    import torch

    kinds = (torch.nn.Linear, torch.nn.Embedding)
    return {name for name, m in model.named_modules() if name and isinstance(m, kinds)}


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters; peft counts a packed 4-bit weight as its real size."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
        return int(trainable), int(total)
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
