"""The from-scratch trainer: a byte-level BPE tokenizer and a small Llama-style causal language
model, trained with the Hugging Face ``Trainer``.

The model is a ``LlamaConfig`` model rather than GPT-2: rotary positions, RMSNorm, SwiGLU and
grouped-query attention are what today's small open models (Llama, Qwen, SmolLM) use, so what a
user learns here, and every attention backend tried here, carries over to the models they
fine-tune. It also reaches attention only through transformers' ``AttentionInterface``, which is
how qslm's attention backends are plugged in.

The build holds ``model/`` (``config.json``, ``model.safetensors``, ``generation_config.json``
and the tokenizer files), which plain transformers loads without qslm.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import time
from typing import TYPE_CHECKING, Any

from pydantic import Field

from qslm.components import Artifact, AttentionBackend, Dataset, Options, Trainer
from qslm.errors import ConfigError, QslmError
from qslm.quiet import hf_quiet
from qslm.resources import torch_threads
from qslm.tracking import trainer_arguments
from qslm.train.callbacks import (
    MAX_EPOCHS,
    MAX_STEPS,
    LogToContext,
    LossTracker,
)
from qslm.train.packing import pack, record_texts, token_stream

if TYPE_CHECKING:
    from qslm.context import RunContext
    from qslm.resources import Estimate

EOS = "<|endoftext|>"
MODEL_DIR = "model"


class ScratchOptions(Options):
    """``[train.options]`` of the ``scratch`` trainer.

    The defaults are the quickstart's: tuned on ~150 KB of English prose so that training takes
    about a minute on two CPU cores and held-out perplexity ends far below the untrained model's.
    A small corpus wants a small vocabulary, short blocks, many small steps and dropout; a larger
    corpus affords more of everything (and fewer epochs).
    """

    vocab_size: int = Field(
        512,
        ge=300,
        description="Target BPE vocabulary size, the end-of-text token included. A "
        "small corpus may yield fewer merges; the model uses the size actually learned.",
    )
    min_frequency: int = Field(
        2, ge=1, description="A pair of tokens is merged only if it occurs at least this often."
    )
    layers: int = Field(2, ge=1, description="Number of transformer blocks.")
    hidden_size: int = Field(192, ge=8, description="Width of the residual stream.")
    heads: int = Field(4, ge=1, description="Attention (query) heads; must divide hidden_size.")
    kv_heads: int | None = Field(
        None,
        ge=1,
        description="Key/value heads for grouped-query attention; must divide "
        "heads. Default: heads (plain multi-head attention).",
    )
    intermediate_size: int | None = Field(
        None,
        ge=1,
        description="Width of the SwiGLU feed-forward layer. Default: 8/3 of "
        "hidden_size rounded up to a multiple of 32 (about the parameters of a 4x GELU MLP).",
    )
    context_length: int = Field(
        64, ge=8, description="Tokens per training block, and the model's maximum positions."
    )
    tie_embeddings: bool = Field(
        True, description="Share the input embedding and output projection weights."
    )
    dropout: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="Dropout on the attention weights (the only dropout a Llama block has); "
        "it keeps a small model from memorising a small corpus.",
    )
    batch_size: int = Field(16, ge=1, description="Blocks per device per forward pass.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Forward passes summed into one optimiser step."
    )
    learning_rate: float = Field(3e-3, gt=0.0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.1, ge=0.0, description="AdamW decoupled weight decay.")
    warmup_ratio: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Fraction of the optimiser steps spent warming the "
        "learning rate up linearly from 0; a cosine decay to 0 follows.",
    )
    epochs: float = Field(
        12.0,
        gt=0.0,
        le=MAX_EPOCHS,
        description="Passes over the training blocks (used when max_steps is 0).",
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
    logging_every: int = Field(
        50, ge=1, description="Log loss and learning rate every this many optimiser steps."
    )
    checkpoint_every: int = Field(
        0,
        ge=0,
        description="Save a resumable checkpoint under build/checkpoints every this "
        "many steps (only the newest is kept); 0 = never.",
    )
    keep_checkpoint: bool = Field(
        False,
        description="Keep the newest checkpoint in the build after training; by "
        "default checkpoints are deleted once the final model is saved.",
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for torch. Default: OMP_NUM_THREADS when set, "
        "else all usable cores.",
    )
    bf16: bool = Field(
        False, description="bfloat16 mixed precision (on GPUs and CPUs that support it)."
    )


class ScratchTrainer(Trainer):
    """Train a byte-level BPE tokenizer and a small Llama-style GPT from random weights."""

    Options = ScratchOptions
    options: ScratchOptions

    def plan(self) -> list[str]:
        o = self.options
        key = "train.options"
        if o.hidden_size % o.heads:
            raise ConfigError(
                f"{key}.heads: hidden_size {o.hidden_size} is not divisible by heads {o.heads}"
            )
        if (o.hidden_size // o.heads) % 2:
            raise ConfigError(
                f"{key}.heads: head size hidden_size/heads = {o.hidden_size // o.heads} must be "
                "even for rotary position embeddings"
            )
        kv_heads = o.kv_heads or o.heads
        if o.heads % kv_heads:
            raise ConfigError(
                f"{key}.kv_heads: heads {o.heads} is not divisible by kv_heads {kv_heads}"
            )
        steps = f"{o.max_steps} steps" if o.max_steps else f"{o.epochs:g} epochs"
        return [
            f"{o.layers} layers x {o.hidden_size} wide, {o.heads} heads, context "
            f"{o.context_length}, vocabulary {o.vocab_size}",
            f"{steps}, batch {o.batch_size} x {o.gradient_accumulation_steps}, "
            f"learning rate {o.learning_rate:g}",
            f"memory: about {self.estimate().detail}",
        ]

    def estimate(self) -> Estimate:
        from qslm.train.estimate import llama_estimate

        return llama_estimate(self.options)

    def train(self, ctx: RunContext, data: Dataset, attention: AttentionBackend) -> Artifact:
        with hf_quiet():
            return self._train(ctx, data, attention)

    def _train(self, ctx: RunContext, data: Dataset, attention: AttentionBackend) -> Artifact:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM

        from qslm.attention.hf import install

        self.plan()
        o = self.options
        texts = record_texts(data.train, split="training")
        torch.set_num_threads(torch_threads(o.threads))
        transformers.set_seed(ctx.seed)
        out = ctx.build_dir / MODEL_DIR

        started = time.perf_counter()
        tokenizer = train_tokenizer(texts, o.vocab_size, o.min_frequency, o.context_length)
        ctx.progress(
            f"  tokenizer: {len(tokenizer)} tokens learned in {time.perf_counter() - started:.1f}s"
        )
        blocks = pack(
            token_stream(tokenizer, texts, tokenizer.eos_token_id),
            o.context_length,
            keep_remainder=False,
        )
        if not blocks:
            raise QslmError(
                f"the training data is too short: fewer than context_length = "
                f"{o.context_length} tokens. Add text or lower train.options.context_length."
            )

        config = self.model_config(tokenizer)
        transformers.set_seed(ctx.seed)
        model = AutoModelForCausalLM.from_config(config, attn_implementation=install(attention))
        init_sha256 = state_sha256(model)
        n_params = sum(p.numel() for p in model.parameters())
        ctx.log_event(
            "train_start",
            parameters=n_params,
            blocks=len(blocks),
            tokens=len(blocks) * o.context_length,
            vocab_size=len(tokenizer),
            attn_implementation=model.config._attn_implementation,
        )
        ctx.progress(
            f"  model: {n_params / 1e6:.2f}M parameters, {len(blocks)} blocks of "
            f"{o.context_length} tokens"
        )

        result, losses, main = self._fit(ctx, model, tokenizer, blocks)

        if main:  # under `qslm run --nproc N` every rank trains; rank 0 alone writes
            model.config.use_cache = True  # the Trainer turns the KV cache off; generation wants it
            model.save_pretrained(out)  # safetensors only: transformers 5 writes no pickle
            tokenizer.save_pretrained(out)
            checkpoints = ctx.checkpoint_dir
            if checkpoints.exists() and not (o.keep_checkpoint and o.checkpoint_every):
                shutil.rmtree(checkpoints)

        return Artifact(
            model_dir=MODEL_DIR,
            tokenizer_dir=MODEL_DIR,
            kind="full",
            reference={"type": "init", "seed": ctx.seed, "init_sha256": init_sha256},
            metrics={
                **losses.metrics(),
                "train_steps": int(result.global_step),
                "train_tokens": len(blocks) * o.context_length,
                "parameters": n_params,
                "vocab_size": len(tokenizer),
            },
        )

    def model_config(self, tokenizer: Any) -> Any:
        """The ``LlamaConfig`` of the model for a trained tokenizer."""
        from transformers import LlamaConfig

        o = self.options
        eos = tokenizer.eos_token_id
        return LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=o.hidden_size,
            intermediate_size=o.intermediate_size or 32 * math.ceil(o.hidden_size * 8 / 3 / 32),
            num_hidden_layers=o.layers,
            num_attention_heads=o.heads,
            num_key_value_heads=o.kv_heads or o.heads,
            max_position_embeddings=o.context_length,
            attention_dropout=o.dropout,
            tie_word_embeddings=o.tie_embeddings,
            bos_token_id=eos,
            eos_token_id=eos,
            pad_token_id=eos,
        )

    def _fit(
        self, ctx: RunContext, model: Any, tokenizer: Any, blocks: list[list[int]]
    ) -> tuple[Any, LossTracker, bool]:
        """Run the Hugging Face Trainer; returns its result, the step losses and whether this
        is the main process (of several under torchrun)."""
        import torch
        from transformers import Trainer as HFTrainer
        from transformers import TrainingArguments, default_data_collator
        from transformers.trainer_callback import PrinterCallback

        o = self.options
        ids = torch.tensor(blocks, dtype=torch.long)
        dataset = [{"input_ids": row, "labels": row} for row in ids]
        args = TrainingArguments(
            output_dir=str(ctx.checkpoint_dir),
            per_device_train_batch_size=o.batch_size,
            gradient_accumulation_steps=o.gradient_accumulation_steps,
            learning_rate=o.learning_rate,
            weight_decay=o.weight_decay,
            adam_beta2=0.95,
            lr_scheduler_type="cosine",
            warmup_steps=o.warmup_ratio,  # a float below 1 is a ratio of the total steps
            num_train_epochs=o.epochs,
            max_steps=o.max_steps or -1,
            max_grad_norm=o.max_grad_norm,
            logging_strategy="steps",
            logging_steps=o.logging_every,
            logging_first_step=True,
            save_strategy="steps" if o.checkpoint_every else "no",
            save_steps=o.checkpoint_every or 500,
            save_total_limit=1,
            seed=ctx.seed,
            data_seed=ctx.seed,
            bf16=o.bf16,
            **trainer_arguments(ctx),  # report_to: [track]'s Trainer integration, or none
            disable_tqdm=True,
            dataloader_pin_memory=False,
        )
        recorder = LogToContext(ctx)
        trainer = HFTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=default_data_collator,
            processing_class=tokenizer,
            callbacks=[recorder.callback()],
        )
        trainer.remove_callback(PrinterCallback)  # it prints raw dicts; the recorder reports
        losses = LossTracker(ctx, o.logging_every)
        losses.attach(trainer)
        result = trainer.train(resume_from_checkpoint=ctx.resume_checkpoint())
        return result, losses, trainer.is_world_process_zero()


def train_tokenizer(
    texts: list[str], vocab_size: int, min_frequency: int, context_length: int
) -> Any:
    """A byte-level BPE tokenizer trained on ``texts``, as a ``PreTrainedTokenizerFast``.

    ``<|endoftext|>`` is the only special token and serves as bos, eos and pad; the tokenizer
    prepends it to what it encodes, so a prompt starts the way every training text does.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    bpe = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=bpe)
    eos_id = tok.token_to_id(EOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{EOS} $A", pair=f"{EOS} $A {EOS} $B:1", special_tokens=[(EOS, eos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=EOS,
        model_max_length=context_length,
        clean_up_tokenization_spaces=False,
    )


def state_sha256(model: Any) -> str:
    """A digest of a model's weights, to check that a rebuilt initial model is the same one."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()
