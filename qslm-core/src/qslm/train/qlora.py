"""Loading a causal LM the way the ``lora`` trainer trains on it (full precision, or 4-bit NF4
with bitsandbytes for QLoRA), and merging an adapter into a full model.

The trainer, the ``perplexity`` evaluator and the merge all load the base through
:func:`load_causal_lm`, so an adapter is always evaluated and merged on exactly the weights it
was trained against.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from qslm.errors import ConfigError

QUANTIZATIONS = ("none", "nf4")


def require_bitsandbytes(key: str) -> None:
    """A ConfigError with the install hint when bitsandbytes is missing (checked without
    importing it, so pre-flight stays cheap)."""
    if find_spec("bitsandbytes") is None:
        raise ConfigError(
            f'{key}: quantization = "nf4" (QLoRA) needs bitsandbytes, which is not installed: '
            "pip install 'qslm-core[qlora]'"
        )


@contextmanager
def _quiet_bitsandbytes():
    # On CPUs with AVX512-BF16 bitsandbytes tries to fetch an optional kernel from the Hub at
    # import and logs a warning when it cannot; its own CPU kernels are used instead, so the
    # warning is noise in qslm's output (and we never want that download anyway).
    logger = logging.getLogger("bitsandbytes")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        import bitsandbytes  # noqa: F401  (imported here, under the quieted logger)

        yield
    finally:
        logger.setLevel(level)


def device_map() -> dict[str, Any]:
    """Where a 4-bit model goes: this process's GPU under torchrun (one per rank), else CPU.
    bitsandbytes quantises while loading, so the device must be chosen at load time."""
    import torch

    if torch.cuda.is_available():
        return {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return {"": "cpu"}


def nf4_config(compute_dtype: str = "float32", double_quant: bool = True) -> Any:
    """The ``BitsAndBytesConfig`` of QLoRA: 4-bit NormalFloat weights, computing in
    ``compute_dtype``; double quantisation also quantises the per-block scales."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
    )


def load_causal_lm(
    source: str,
    *,
    attn: str | None = None,
    quantization: str = "none",
    compute_dtype: str = "float32",
    double_quant: bool = True,
    local_only: bool = True,
) -> Any:
    """``AutoModelForCausalLM.from_pretrained`` in float32, or quantised to NF4.

    ``local_only`` keeps a Hub name to the local cache (pre-flight already checked it is there).
    """
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.float32, "local_files_only": local_only}
    if attn:
        kwargs["attn_implementation"] = attn
    if quantization == "nf4":
        require_bitsandbytes("quantization")
        with _quiet_bitsandbytes():
            model = AutoModelForCausalLM.from_pretrained(
                source,
                quantization_config=nf4_config(compute_dtype, double_quant),
                device_map=device_map(),
                **kwargs,
            )
        _fit_cpu_inference_kernel(model)
        return model
    if quantization != "none":
        raise ConfigError(f"quantization must be one of {QUANTIZATIONS}, not {quantization!r}")
    return AutoModelForCausalLM.from_pretrained(source, **kwargs)


def _fit_cpu_inference_kernel(model: Any) -> None:
    """bitsandbytes 0.50 repacks a 4-bit weight for its AVX512-BF16 CPU kernel on the first
    inference call (eval mode, no grad) and fails there when the layer's input width is not a
    multiple of the quantisation block (64) or its output width not a multiple of 32; such
    layers keep the generic kernel, which computes the same product."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and getattr(
            module, "support_avx512bf16_for_cpu", False
        ):
            block = getattr(module.weight, "blocksize", 64) or 64
            if module.in_features % block or module.out_features % 32:
                module.support_avx512bf16_for_cpu = False


def keep_training_kernels(model: Any) -> None:
    """Keep every 4-bit layer of a model that is being trained on bitsandbytes' generic kernel.

    bitsandbytes 0.50's AVX512-BF16 CPU inference kernel repacks a layer's 4-bit weight in
    place on its first eval-mode call and never unpacks it for training: measured on the thesis
    example, one validation pass before training (which the Trainer does) turned a LoRA run
    whose loss fell from 3.24 to 3.10 (the same run on the dequantised base) into one whose loss
    rose to 4.46. Training with evaluation in between therefore must not switch kernels; after
    training, inference-only loads keep the fast kernel.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def dequantized_base(source: str, *, compute_dtype: str, double_quant: bool) -> Any:
    """The float32 base model whose quantised layers hold the dequantised NF4 weights: the
    weights a QLoRA adapter was trained against.

    Merging into the original float32 weights instead would add a correction learned against
    the quantised weights to different ones; this way the merged model computes what the
    QLoRA model computed (up to float rounding).
    """
    import bitsandbytes as bnb
    import torch

    full = load_causal_lm(source, quantization="none")
    quantised = load_causal_lm(
        source, quantization="nf4", compute_dtype=compute_dtype, double_quant=double_quant
    )
    with torch.no_grad():
        for name, module in quantised.named_modules():
            if isinstance(module, bnb.nn.Linear4bit):
                weight = bnb.functional.dequantize_4bit(
                    module.weight.data, module.weight.quant_state
                )
                full.get_submodule(name).weight.copy_(weight.to(torch.float32).cpu())
    del quantised
    return full


def save_merged(
    source: str,
    adapter_dir: Path,
    out_dir: Path,
    tokenizer: Any,
    *,
    quantization: str,
    compute_dtype: str,
    double_quant: bool,
) -> None:
    """Save base + adapter as one full float32 model (``save_pretrained``, safetensors) that
    plain transformers loads without peft."""
    from peft import PeftModel

    if quantization == "nf4":
        base = dequantized_base(source, compute_dtype=compute_dtype, double_quant=double_quant)
    else:
        base = load_causal_lm(source)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.config.use_cache = True
    merged.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
