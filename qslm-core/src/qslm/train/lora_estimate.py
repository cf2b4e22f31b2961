"""Memory and disk a LoRA (or QLoRA) fine-tune will need, from the base's files alone.

Reads ``config.json`` and the safetensors headers (the same read the target-module check makes:
no torch, no weights). The base is loaded in float32 (4 bytes a weight); under
``quantization = "nf4"`` its linear layers take 4 bits a weight plus bitsandbytes' block scales,
and the embeddings, norms and output head stay float32. Only the adapter trains, so gradients
and AdamW's two moments are counted for the LoRA parameters alone; activations follow the
scratch trainer's formula (:func:`qslm.train.estimate.activation_bytes`) at the batch size and
``max_length`` given. Like that one, it only has to tell a size that fits from one that cannot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qslm.resources import Estimate, format_bytes
from qslm.train.base_model import BaseModel, weight_shapes
from qslm.train.estimate import _F32, _MARGIN, activation_bytes

_NF4 = 0.5  # bytes a weight: 4 bits
_BLOCK = 64  # bitsandbytes' NF4 block size: one absmax scale per 64 weights
# One float32 absmax a block; double quantisation stores it in 8 bits, with one float32 scale
# for every 256 of those (QLoRA paper, section 3).
_SCALES = {False: _F32 / _BLOCK, True: 1 / _BLOCK + _F32 / (_BLOCK * 256)}
_EMBEDDING_NAMES = ("embed", "wte", "wpe", "lm_head")


def lora_estimate(o: Any, base: BaseModel, targets: str | list[str], key: str) -> Estimate | None:
    """The :class:`Estimate` of the lora trainer's options ``o`` on ``base``; None when the
    base's files are not on disk (a Hub model still to be downloaded: its sizes are unknown
    until then, and guessing them could refuse a run that fits) or not in safetensors."""
    if base.folder is None:
        return None
    shapes = weight_shapes(base.folder)
    sizes = _decoder_sizes(base.folder)
    if shapes is None or sizes is None:
        return None
    vocab, hidden, layers, heads, intermediate = sizes
    params = sum(_numel(s) for s in shapes.values())
    linear = {n: s for n, s in _matrices(shapes).items() if not _is_embedding(n, s, vocab)}
    adapted = _adapted(linear, _matrices(shapes), targets)
    trainable = sum(o.r * sum(s) for s in adapted.values())
    if o.quantization == "nf4":
        quantised = sum(_numel(s) for n, s in linear.items())
        base_bytes = int(quantised * (_NF4 + _SCALES[o.double_quant]) + _F32 * (params - quantised))
    else:
        base_bytes = _F32 * params
    training = 4 * _F32 * trainable  # adapter weights, gradients, two AdamW moments
    activations = activation_bytes(
        o.batch_size, o.max_length, hidden, intermediate, heads, layers, vocab,
        width=2 if o.bf16 else _F32, checkpointing=o.gradient_checkpointing,
    )  # fmt: skip
    adapter = _F32 * trainable
    checkpoints = 2 * 3 * adapter if o.checkpoint_every else 0  # newest + the one replacing it
    merged = _F32 * params if o.merge else 0
    quant = " in NF4" if o.quantization == "nf4" else ""
    return Estimate(
        memory=base_bytes + training + activations + _MARGIN,
        disk=adapter + checkpoints + merged + 16 * 2**20,
        options=(
            f"{key} (base_model {o.base_model}: {params:,} parameters{quant}; r {o.r} on "
            f"{len(adapted)} modules: {trainable:,} trainable; batch_size {o.batch_size}, "
            f"max_length {o.max_length})"
        ),
        how=(
            "lower batch_size or max_length, set gradient_checkpointing = true or quantization "
            '= "nf4", or choose a smaller base_model'
        ),
        detail=(
            f"{format_bytes(base_bytes)} for the base's {params / 1e6:,.2f}M parameters{quant}, "
            f"{format_bytes(training)} for the weights, gradients and optimizer state of "
            f"{trainable / 1e6:,.3f}M trainable LoRA parameters, "
            f"{format_bytes(activations)} for activations"
        ),
    )


def _decoder_sizes(folder: Path) -> tuple[int, int, int, int, int] | None:
    """(vocab, hidden, layers, heads, intermediate) from ``config.json``, under the names
    Llama-, GPT-2- and OPT-style configs use; None when the config does not say."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    config = config.get("text_config", config) if isinstance(config, dict) else {}

    def first(*names: str) -> int | None:
        values = [config.get(n) for n in names]
        return next((v for v in values if isinstance(v, int) and v > 0), None)

    vocab = first("vocab_size")
    hidden = first("hidden_size", "n_embd", "d_model")
    layers = first("num_hidden_layers", "n_layer", "num_layers")
    heads = first("num_attention_heads", "n_head")
    if None in (vocab, hidden, layers, heads):
        return None
    intermediate = first("intermediate_size", "n_inner", "ffn_dim") or 4 * hidden
    return vocab, hidden, layers, heads, intermediate


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _matrices(shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Modules with a 2-D weight, by module name: what LoRA can wrap."""
    return {
        n.removesuffix(".weight"): s
        for n, s in shapes.items()
        if n.endswith(".weight") and len(s) == 2
    }


def _is_embedding(name: str, shape: tuple[int, ...], vocab: int) -> bool:
    # Embeddings and the output head are not linear layers peft's "all-linear" adapts, nor
    # ones bitsandbytes quantises; the header has no module types, so names and the vocabulary
    # width tell them apart.
    last = name.rsplit(".", 1)[-1]
    return any(e in last for e in _EMBEDDING_NAMES) or vocab in shape


def _adapted(
    linear: dict[str, tuple[int, ...]],
    matrices: dict[str, tuple[int, ...]],
    targets: str | list[str],
) -> dict[str, tuple[int, ...]]:
    """The modules peft wraps: every linear layer for "all-linear", else those whose name is
    a target or ends with ``.target`` (peft's matching)."""
    if isinstance(targets, str):
        return linear
    return {
        n: s for n, s in matrices.items() if any(n == t or n.endswith("." + t) for t in targets)
    }
