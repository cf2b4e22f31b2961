"""``--format merged``: one plain transformers folder (weights, tokenizer with its chat template,
generation config) that loads without peft and that vLLM or TGI serve.

An adapter is merged by the lora trainer's own :func:`qslm.train.qlora.save_merged` (into the
dequantised NF4 base for a QLoRA build, the weights it was trained against); a full build's
model folder is copied as it is.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qslm.export.source import ExportSource
from qslm.export.templates import ChatFormat, chat_format

# Files of a model folder that are the model (the tokenizer is saved separately).
_MODEL_SUFFIXES = (".safetensors", ".json", ".bin")
_TOKENIZER_FILES = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
    "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json",
    "added_tokens.json",
}  # fmt: skip


def load_tokenizer(source: ExportSource) -> Any:
    from transformers import AutoTokenizer

    from qslm.inference.load import _from_pretrained
    from qslm.quiet import hf_quiet

    with hf_quiet():
        return _from_pretrained(AutoTokenizer, source.tokenizer_dir, "tokenizer")


def write_merged(source: ExportSource, folder: Path, progress: Callable[[str], None]) -> ChatFormat:
    """Write ``source`` as a transformers model folder into ``folder``; returns its chat format."""
    tokenizer = load_tokenizer(source)
    fmt = chat_format(source, tokenizer)
    if fmt.jinja is not None:
        tokenizer.chat_template = fmt.jinja
    if source.kind == "adapter":
        _merge_adapter(source, folder, tokenizer, progress)
    else:
        progress(f"copying the model of {source.label}")
        for path in sorted(source.model_dir.iterdir()):
            if (
                path.is_file()
                and path.suffix in _MODEL_SUFFIXES
                and path.name not in (_TOKENIZER_FILES)
            ):
                shutil.copyfile(path, folder / path.name)
    tokenizer.save_pretrained(folder)
    _write_generation_config(folder, tokenizer)
    return fmt


def _merge_adapter(
    source: ExportSource, folder: Path, tokenizer: Any, progress: Callable[[str], None]
) -> None:
    from qslm.quiet import hf_quiet
    from qslm.train.qlora import save_merged

    q = source.quantization
    how = " (dequantised from 4-bit NF4)" if q else ""
    progress(f"merging the adapter of {source.label} into its base{how}")
    with hf_quiet():
        save_merged(
            str(source.artifact["base_model"]),
            source.model_dir,
            folder,
            tokenizer,
            quantization=q.get("quantization", "none"),
            compute_dtype=q.get("compute_dtype", "float32"),
            double_quant=q.get("double_quant", True),
        )


def _write_generation_config(folder: Path, tokenizer: Any) -> None:
    """A generation config naming the tokenizer's eos/pad/bos, so generation stops where
    ``qslm generate`` stops; one the model already has is kept and completed."""
    from transformers import GenerationConfig

    path = folder / "generation_config.json"
    config = GenerationConfig.from_pretrained(folder) if path.is_file() else GenerationConfig()
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(config, key, None) is None:
            value = getattr(tokenizer, key, None)
            if key == "pad_token_id" and value is None:
                value = tokenizer.eos_token_id  # qslm generate pads with eos too
            setattr(config, key, value)
    config.save_pretrained(folder)
