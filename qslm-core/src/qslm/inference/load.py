"""Load a build's model and tokenizer: a full model, or a base model plus a PEFT adapter."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qslm.builds import read_manifest
from qslm.errors import ConfigError, QslmError


@dataclass
class LoadedBuild:
    """A build ready to generate: the model (in eval mode), its tokenizer and its manifest."""

    path: Path
    model: Any
    tokenizer: Any
    manifest: dict[str, Any]

    @property
    def context_length(self) -> int | None:
        """The most positions the model accepts (prompt and new tokens together), if known."""
        value = getattr(self.model.config, "max_position_embeddings", None)
        return int(value) if value else None

    @property
    def label(self) -> str:
        name, version = self.manifest.get("name"), self.manifest.get("version")
        return f"{name}@{version}" if name and version else str(self.path)


def _artifact(build: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    artifact = manifest.get("artifact")
    if not isinstance(artifact, dict) or not artifact.get("model_dir"):
        raise ConfigError(f"{build / 'manifest.json'}: no artifact.model_dir; nothing to load")
    kind = artifact.get("kind", "full")
    if kind not in ("full", "adapter"):
        raise ConfigError(
            f"{build / 'manifest.json'}: artifact.kind is {kind!r}; qslm loads 'full' or 'adapter'"
        )
    if kind == "adapter" and not artifact.get("base_model"):
        raise ConfigError(f"{build / 'manifest.json'}: an adapter build needs artifact.base_model")
    return artifact


def _from_pretrained(loader: Any, source: str | Path, what: str, **kwargs: Any) -> Any:
    try:
        return loader.from_pretrained(str(source), **kwargs)
    except (OSError, ValueError) as exc:
        # A missing folder, a hub name with no network, a corrupt file: the user's to fix.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QslmError(f"cannot load the {what} from {source}: {first}") from None


def load_build(path: str | Path, *, device: str | None = None) -> LoadedBuild:
    """Load the build in ``path`` (a ``vN`` folder) for generation.

    ``artifact.kind == "full"`` loads ``model_dir`` with ``AutoModelForCausalLM``; ``"adapter"``
    loads ``artifact.base_model`` (a path or hub name) and the PEFT adapter in ``model_dir`` over
    it. ``device`` defaults to CUDA when available, else the CPU.
    """
    build = Path(path)
    manifest = read_manifest(build)
    artifact = _artifact(build, manifest)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qslm.quiet import hf_quiet

    model_dir = build / artifact["model_dir"]
    tokenizer_dir = build / (artifact.get("tokenizer_dir") or artifact["model_dir"])
    for folder in {model_dir, tokenizer_dir}:
        if not folder.is_dir():
            raise QslmError(f"{build}: the build's folder {folder.name!r} is missing")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    with hf_quiet():
        tokenizer = _from_pretrained(AutoTokenizer, tokenizer_dir, "tokenizer")
        if artifact.get("kind", "full") == "full":
            model = _from_pretrained(AutoModelForCausalLM, model_dir, "model")
        else:
            from peft import PeftModel

            base = _from_pretrained(
                _BaseLoader(artifact.get("reference") or {}),
                artifact["base_model"],
                "base model of the adapter",
            )
            model = _from_pretrained(
                _PeftLoader(PeftModel, base), model_dir, "adapter", is_trainable=False
            )
    quantized = (artifact.get("reference") or {}).get("quantization", "none") != "none"
    if not (quantized and artifact.get("kind") == "adapter"):  # 4-bit: placed at load
        model.to(device)
    model.eval()
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedBuild(path=build, model=model, tokenizer=tokenizer, manifest=manifest)


class _PeftLoader:
    """``PeftModel.from_pretrained(base, path)`` behind the ``from_pretrained(path)`` shape."""

    def __init__(self, peft_model: Any, base: Any) -> None:
        self.peft_model, self.base = peft_model, base

    def from_pretrained(self, source: str, **kwargs: Any) -> Any:
        return self.peft_model.from_pretrained(self.base, source, **kwargs)


class _BaseLoader:
    """An adapter's base, loaded the way it was trained on (``artifact.reference``): a QLoRA
    adapter over the same 4-bit NF4 base, as the ``perplexity`` evaluator and the merge do, so
    ``qslm generate`` computes what was evaluated and what ``qslm export`` merges."""

    def __init__(self, reference: dict[str, Any]) -> None:
        self.reference = reference

    def from_pretrained(self, source: str, **kwargs: Any) -> Any:
        from qslm.train.qlora import load_causal_lm

        ref = self.reference
        if ref.get("quantization", "none") == "none":
            from transformers import AutoModelForCausalLM

            return AutoModelForCausalLM.from_pretrained(source, **kwargs)
        return load_causal_lm(
            source,
            quantization=ref["quantization"],
            compute_dtype=ref.get("compute_dtype", "float32"),
            double_quant=ref.get("double_quant", True),
            local_only=False,
        )
