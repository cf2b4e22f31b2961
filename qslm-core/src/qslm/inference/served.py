"""The builds one ``qslm serve`` serves: their model ids and aliases, loading (eager or on first
use), LoRA builds over one base sharing its weights (PEFT holds several adapters on one base
model), a :class:`~qslm.inference.batching.Batcher` per set of weights, and memory per build.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qslm.builds import BuildStore, pipeline_names, read_manifest, resolve_build
from qslm.errors import ConfigError
from qslm.inference.load import _artifact, _from_pretrained, load_build


def resolve_specs(specs: list[str], output: Path) -> list[Path]:
    """Build folders for ``qslm serve BUILD [BUILD ...]``: a build folder, ``NAME@vN`` (in
    ``output``), ``builds/NAME@current`` (as the ``lora`` trainer's ``base_model`` reads it),
    or a builds folder (the current build of each of its pipelines)."""
    from qslm.train.base_model import build_by_version

    paths: list[Path] = []
    seen: dict[Path, str] = {}
    for spec in specs:
        folder = Path(spec)
        if folder.is_dir() and not (folder / "manifest.json").is_file() and pipeline_names(folder):
            found = [resolve_build(f"{n}@current", folder) for n in pipeline_names(folder)]
        elif "@" in spec and "/" in spec and not (folder / "manifest.json").is_file():
            found = [build_by_version(spec, Path.cwd(), f"BUILD {spec}")]
        else:
            found = [resolve_build(spec, output)]
        for path in found:
            if path.resolve() in seen:
                raise ConfigError(
                    f"BUILD {spec}: the same build as {seen[path.resolve()]}; name each build once"
                )
            seen[path.resolve()] = spec
            paths.append(path)
    return paths


def _created(manifest: dict[str, Any], path: Path) -> int:
    try:
        return int(dt.datetime.fromisoformat(manifest["created"]).timestamp())
    except (KeyError, TypeError, ValueError):
        return int(path.stat().st_mtime)


def _template(manifest: dict[str, Any]) -> str | None:
    """The instruction template the ``lora`` trainer tuned the build on, if it recorded one."""
    train = ((manifest.get("pipeline") or {}).get("config") or {}).get("train") or {}
    if train.get("trainer") != "lora":
        return None
    return str((train.get("options") or {}).get("template") or "auto")


def _bytes(tensors: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@dataclass(eq=False)
class ServedBuild:
    """One build: its model id, aliases and, once loaded, its model, tokenizer and batcher."""

    id: str
    path: Path
    manifest: dict[str, Any]
    aliases: list[str] = field(default_factory=list)
    adapter: str | None = None  # PEFT adapter name when it shares a base with other builds
    group: _WeightGroup | None = None
    tokenizer: Any = None

    @property
    def created(self) -> int:
        return _created(self.manifest, self.path)

    @property
    def template(self) -> str | None:
        return _template(self.manifest)

    @property
    def loaded(self) -> bool:
        return self.group is not None and self.group.model is not None

    @property
    def model(self) -> Any:
        return self.group.model if self.group else None

    @property
    def context_length(self) -> int | None:
        value = getattr(self.model.config, "max_position_embeddings", None) if self.loaded else None
        return int(value) if value else None

    def weights_bytes(self) -> int | None:
        """Bytes of the weights this build alone holds (an adapter: its LoRA matrices)."""
        if not self.loaded:
            return None
        if self.adapter is None:
            return _bytes([*self.model.parameters(), *self.model.buffers()])
        marker = f".{self.adapter}."
        return _bytes(p for n, p in self.model.named_parameters() if marker in n)


@dataclass(eq=False)
class _WeightGroup:
    """Builds served by one model object: a full build alone, or LoRA builds over one base."""

    base: str | None
    members: list[ServedBuild]
    model: Any = None
    batcher: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, max_batch: int, workers: int) -> None:
        from qslm.inference.batching import Batcher

        with self.lock:
            if self.model is not None:
                return
            if self.base is None:
                loaded = load_build(self.members[0].path)
                model, self.members[0].tokenizer = loaded.model, loaded.tokenizer
            else:
                model = self._load_adapters()
            self.batcher = Batcher(
                model, self.members[0].tokenizer, max_batch=max_batch, workers=workers
            )
            self.model = model  # last: `loaded` turns true only when the batcher exists

    def _load_adapters(self) -> Any:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from qslm.quiet import hf_quiet

        with hf_quiet():
            model = _from_pretrained(AutoModelForCausalLM, self.base, "base model of the adapters")
            for i, build in enumerate(self.members):
                artifact = _artifact(build.path, build.manifest)
                folder = build.path / artifact["model_dir"]
                tokenizer_dir = build.path / (
                    artifact.get("tokenizer_dir") or artifact["model_dir"]
                )
                build.tokenizer = _from_pretrained(AutoTokenizer, tokenizer_dir, "tokenizer")
                if build.tokenizer.pad_token_id is None:
                    build.tokenizer.pad_token = build.tokenizer.eos_token
                if i == 0:
                    model = PeftModel.from_pretrained(
                        model, str(folder), adapter_name=build.adapter, is_trainable=False
                    )
                else:
                    model.load_adapter(str(folder), adapter_name=build.adapter, is_trainable=False)
        model.to("cuda" if torch.cuda.is_available() else "cpu")
        return model.eval()

    def base_bytes(self) -> int | None:
        if self.base is None or self.model is None:
            return None
        return _bytes(p for n, p in self.model.named_parameters() if "lora_" not in n)


class ServedBuilds:
    """The builds of one server, addressed by model id or alias (``name@vN``, ``name@current``,
    ``name@latest``, ``name``). ``eager`` loads all now; otherwise each on its first request."""

    def __init__(
        self, paths: list[Path], *, max_batch: int, workers: int = 1, eager: bool = True
    ) -> None:
        self.max_batch, self.workers = max_batch, workers
        self.builds = [self._describe(path) for path in paths]
        self.by_id: dict[str, ServedBuild] = {}
        for build in self.builds:
            other = self.by_id.setdefault(build.id, build)
            if other is not build:
                raise ConfigError(f"{build.path} and {other.path} are both model {build.id!r}")
        # Aliases: a build that is its pipeline's current one claims the bare name first.
        current_first = sorted(
            self.builds, key=lambda b: not any("@current" in a for a in b.aliases)
        )
        for build in current_first:
            for name in build.aliases:
                self.by_id.setdefault(name, build)
        self.groups = self._group()
        if eager:
            for group in self.groups:
                group.load(max_batch, workers)

    @classmethod
    def of_loaded(cls, loaded: Any, *, max_batch: int, workers: int = 1) -> ServedBuilds:
        """Serve one build loaded already (a :class:`~qslm.inference.load.LoadedBuild`)."""
        served = cls([loaded.path], max_batch=max_batch, workers=workers, eager=False)
        group = served.groups[0]
        if group.base is not None:  # an adapter build: load it the multi-adapter way
            group.load(max_batch, workers)
            return served
        from qslm.inference.batching import Batcher

        served.builds[0].tokenizer = loaded.tokenizer
        group.batcher = Batcher(
            loaded.model, loaded.tokenizer, max_batch=max_batch, workers=workers
        )
        group.model = loaded.model
        return served

    @staticmethod
    def _describe(path: Path) -> ServedBuild:
        manifest = read_manifest(path)
        _artifact(path, manifest)
        name, version = manifest.get("name"), manifest.get("version")
        if not (name and version):
            return ServedBuild(id=str(path), path=path, manifest=manifest)
        build = ServedBuild(id=f"{name}@{version}", path=path, manifest=manifest)
        store = BuildStore(path.parent.parent, name)
        number = int(str(version).lstrip("v")) if str(version).lstrip("v").isdigit() else None
        versions = store.versions()
        if number is not None and versions and store.current_or_latest() == number:
            build.aliases += [f"{name}@current", name]
        if number is not None and versions and versions[-1] == number:
            build.aliases.append(f"{name}@latest")
        if name not in build.aliases:
            build.aliases.append(name)  # taken only when no served build of name is current
        return build

    def _group(self) -> list[_WeightGroup]:
        groups: list[_WeightGroup] = []
        by_base: dict[str, _WeightGroup] = {}
        for build in self.builds:
            artifact = build.manifest["artifact"]
            if artifact.get("kind", "full") != "adapter":
                build.group = _WeightGroup(None, [build])
                groups.append(build.group)
                continue
            base = str(artifact["base_model"])
            if base not in by_base:
                by_base[base] = _WeightGroup(base, [])
                groups.append(by_base[base])
            group = by_base[base]
            build.adapter, build.group = f"adapter{len(group.members)}", group
            group.members.append(build)
        return groups

    def get(self, model_id: str) -> ServedBuild | None:
        return self.by_id.get(model_id)

    def ensure_loaded(self, build: ServedBuild) -> None:
        """Load ``build`` (and the builds sharing its weights) if it is not loaded yet."""
        assert build.group is not None
        build.group.load(self.max_batch, self.workers)

    def health(self) -> list[dict[str, Any]]:
        """Per build: id, aliases, kind, loaded, context length and weight bytes."""
        out = []
        for build in self.builds:
            entry: dict[str, Any] = {
                "id": build.id,
                "aliases": build.aliases,
                "kind": build.manifest["artifact"].get("kind", "full"),
                "loaded": build.loaded,
                "context_length": build.context_length,
                "weights_bytes": build.weights_bytes(),
            }
            if build.adapter is not None and build.group is not None:
                entry["shared_base"] = {
                    "source": build.group.base,
                    "weights_bytes": build.group.base_bytes(),
                    "builds": [b.id for b in build.group.members],
                }
            out.append(entry)
        return out

    def close(self) -> None:
        for group in self.groups:
            if group.batcher is not None:
                group.batcher.close()
