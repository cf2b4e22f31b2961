"""``[train.options]`` of the ``lora`` trainer (:mod:`qslm.train.lora`); ``qslm-unsloth``
extends them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from qslm.components import Options
from qslm.train.callbacks import MAX_EPOCHS, MAX_STEPS


class LoraOptions(Options):
    """``[train.options]`` of the ``lora`` trainer.

    The LoRA defaults are the QLoRA paper's recipe scaled down (r 8, alpha 16, dropout 0.05,
    learning rate 2e-4, every linear layer adapted): what works across model sizes without
    tuning.
    """

    base_model: str = Field(
        description="The model to fine-tune: a local model folder, a qslm build folder "
        "(e.g. builds/quickstart/v1, whose manifest names the model; builds/quickstart@latest, "
        "@vN or @current picks one by version), or a Hugging Face Hub name, downloaded on "
        "first use (see revision, offline). Relative paths are relative to the pipeline file."
    )
    revision: str | None = Field(
        None,
        description="For a Hub base_model: the branch, tag or commit to use (default main). "
        "The commit it resolves to is recorded in the build's manifest.",
    )
    offline: bool = Field(
        False,
        description="Use a Hub base_model from the local Hugging Face cache only, never the "
        "network (as HF_HUB_OFFLINE=1 or `qslm run --offline` do).",
    )
    r: int = Field(8, ge=1, le=4096, description="LoRA rank: the inner width of each adapter.")
    alpha: float = Field(
        16.0, gt=0.0, description="LoRA alpha: the adapter's output is scaled by alpha / r."
    )
    dropout: float = Field(
        0.05, ge=0.0, lt=1.0, description="Dropout on the adapter's input during training."
    )
    target_modules: str | list[str] = Field(
        "all-linear",
        description='Modules to adapt: "all-linear" (every linear layer but the output head, '
        "as the QLoRA paper recommends: adapting only the attention projections trains "
        "measurably worse at the same budget), or a list of module names such as "
        '["q_proj", "v_proj"], checked against the model before training.',
    )
    template: Literal["auto", "alpaca", "chat", "plain"] = Field(
        "auto",
        description='How records become prompt + response: "alpaca", "chat" (the '
        'tokenizer\'s chat template), "plain" (the record\'s text, no prompt) or "auto" '
        "(chat for chat records when the tokenizer has a template, alpaca for instruction "
        "records, else plain).",
    )
    loss_on: Literal["all", "response"] = Field(
        "response",
        description='Tokens the loss is computed on: "response" (the answer only, the prompt '
        'masked) or "all". Plain-text records have no prompt, so both are the same there.',
    )
    max_length: int = Field(
        512, ge=2, description="Tokens per example; longer examples are cut (and counted)."
    )
    batch_size: int = Field(8, ge=1, description="Examples per device per forward pass.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Forward passes summed into one optimiser step."
    )
    learning_rate: float = Field(2e-4, gt=0.0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW decoupled weight decay.")
    schedule: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "cosine", description="Learning-rate schedule after warm-up."
    )
    # The schedule and checkpoint options below share names with scratch's (train/scratch.py)
    # on purpose, not by copying: each trainer's table is its own documented interface with its
    # own defaults (epochs 3 against 12, logging_every 10 against 50) and wording; a shared base
    # class would tie them together.
    warmup_ratio: float = Field(
        0.03, ge=0.0, lt=1.0, description="Fraction of the steps spent warming up linearly."
    )
    epochs: float = Field(
        3.0,
        gt=0.0,
        le=MAX_EPOCHS,
        description="Passes over the training examples (when max_steps is 0).",
    )
    max_steps: int = Field(
        0,
        ge=0,
        le=MAX_STEPS,
        description="Optimiser steps to train for; 0 = as many as `epochs` takes.",
    )
    max_grad_norm: float = Field(
        1.0, ge=0.0, description="Clip the global gradient norm to this; 0 = no clipping."
    )
    eval_every: int = Field(
        0,
        ge=0,
        description="Compute the validation loss every this many steps (logged to the "
        "training log); 0 = only before and after training. Needs validation records.",
    )
    logging_every: int = Field(
        10, ge=1, description="Log loss and learning rate every this many optimiser steps."
    )
    checkpoint_every: int = Field(
        0,
        ge=0,
        description="Save a resumable checkpoint under build/checkpoints every this many "
        "steps (only the newest is kept; `qslm run --resume` continues from it); 0 = never.",
    )
    keep_checkpoint: bool = Field(
        False, description="Keep the newest checkpoint in the build after training."
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for torch. Default: OMP_NUM_THREADS when set, "
        "else all usable cores.",
    )
    bf16: bool = Field(
        False,
        description="bfloat16 mixed precision (and the 4-bit compute type under QLoRA), on "
        "GPUs and CPUs that support it.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory, slower."
    )
    quantization: Literal["none", "nf4"] = Field(
        "none",
        description='"nf4" loads the base in 4-bit NormalFloat with bitsandbytes (QLoRA; on '
        'CPU too; needs qslm-core[qlora]); "none" keeps it in float32.',
    )
    double_quant: bool = Field(
        True, description="With nf4: quantise the quantisation scales too (QLoRA's default)."
    )
    merge: bool = Field(
        False,
        description="Also save base + adapter as one full model in merged/ (from a 4-bit "
        "base: the dequantised NF4 weights plus the adapter, in float32).",
    )
    deepspeed: str | None = Field(
        None,
        description="Path to a DeepSpeed JSON config, passed to the Trainer as is (for GPU "
        "runs under `qslm run --nproc N`; needs the deepspeed package).",
    )
