"""The ``lora`` trainer: fine-tune an existing causal LM with LoRA (or QLoRA, on a 4-bit NF4
base) through peft and the Hugging Face ``Trainer``.

The base is a local model folder, a qslm build (its ``manifest.json`` says where the model is)
or a Hub name already in the local cache. The build holds ``adapter/`` (``adapter_config.json``,
``adapter_model.safetensors`` and the tokenizer), which plain peft loads over the base, and with
``merge = true`` also ``merged/``, a full model plain transformers loads alone.

All the training machinery is transformers' and peft's; what qslm adds is the checking before
any work (base, target modules, quantisation, DeepSpeed file), instruction formatting, the
build layout, and the hooks a subclass (``qslm-unsloth``) overrides.
"""

from __future__ import annotations

import json
import math
import shutil
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from qslm.components import Artifact, AttentionBackend, Dataset, Options, Trainer
from qslm.errors import ConfigError, QslmError
from qslm.quiet import hf_quiet
from qslm.tracking import trainer_arguments
from qslm.train.base_model import (
    BaseModel,
    fetch_base,
    resolve_base,
    target_choices,
    unknown_targets,
)
from qslm.train.callbacks import (
    MAX_EPOCHS,
    MAX_STEPS,
    LogToContext,
    LossTracker,
    usable_cpus,
)

if TYPE_CHECKING:
    from qslm.context import RunContext
    from qslm.resources import Estimate

ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"
KEY = "train.options"


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
        None, ge=1, description="CPU threads for torch. Default: all usable cores."
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


class LoraTrainer(Trainer):
    """Fine-tune a causal LM with a LoRA adapter (QLoRA with ``quantization = "nf4"``).

    Subclass contract (``qslm-unsloth`` uses it): override

    - :meth:`load_model` ``(ctx, attention) -> (model, tokenizer)``: the base model, already
      quantised when the options ask for it, with the pipeline's attention backend, and its
      tokenizer (a pad token set or not: the collator falls back to eos);
    - :meth:`add_adapter` ``(model) -> model``: the model with trainable LoRA layers (a peft
      ``PeftModel``, or anything with ``save_pretrained`` writing an adapter peft can load).

    Options may be extended by subclassing :class:`LoraOptions`. Everything else (formatting,
    the Hugging Face Trainer, checkpoints and resume, saving on the main process, the merged
    model, the :class:`Artifact`) is shared.
    """

    Options = LoraOptions
    options: LoraOptions
    supports_module_selection: ClassVar[bool] = True

    # -- pre-flight -------------------------------------------------------------------------

    def base(self, fetch: bool = False) -> BaseModel:
        """The resolved base model (ConfigError naming ``train.options.base_model``); with
        ``fetch`` a Hub model is downloaded if needed. Resolved once: the Hub is asked once."""
        o = self.options
        base = getattr(self, "_base", None)
        if base is None:
            base = resolve_base(
                o.base_model, self.base_dir, f"{KEY}.base_model",
                revision=o.revision, offline=o.offline,
            )  # fmt: skip
        if fetch:
            base = fetch_base(base, f"{KEY}.base_model", o.revision)
        self._base = base
        return base

    def targets(self) -> str | list[str]:
        t = self.options.target_modules
        if isinstance(t, str):
            return t if t == "all-linear" else [t]
        if not t:
            raise ConfigError(f'{KEY}.target_modules: empty; name modules or use "all-linear"')
        return list(t)

    def plan(self) -> list[str]:
        o = self.options
        base = self.base()
        targets = self.targets()
        if isinstance(targets, list):
            modules = base.module_names()
            if modules is not None:
                self._check_targets(targets, modules)
        if o.quantization == "nf4":
            from qslm.train.qlora import require_bitsandbytes

            require_bitsandbytes(f"{KEY}.quantization")
        if o.deepspeed:
            self._check_deepspeed(o.deepspeed)
        steps = f"{o.max_steps} steps" if o.max_steps else f"{o.epochs:g} epochs"
        quant = " on a 4-bit NF4 base (QLoRA)" if o.quantization == "nf4" else ""
        return [
            f"base {base.describe()}",
            f"LoRA r={o.r} alpha={o.alpha:g} dropout={o.dropout:g} on "
            f"{targets if isinstance(targets, str) else ', '.join(targets)}{quant}",
            f"{steps}, batch {o.batch_size} x {o.gradient_accumulation_steps}, learning rate "
            f"{o.learning_rate:g} ({o.schedule}), template {o.template}, loss on {o.loss_on}",
            *([f"memory: about {e.detail}"] if (e := self.estimate()) else []),
        ]

    def estimate(self) -> Estimate | None:
        from qslm.train.lora_estimate import lora_estimate

        return lora_estimate(self.options, self.base(), self.targets(), KEY)

    def _check_targets(self, targets: list[str], modules: set[str]) -> None:
        missing = unknown_targets(targets, modules)
        if missing:
            raise ConfigError(
                f"{KEY}.target_modules: the model has no module {', '.join(map(repr, missing))}; "
                f'it has: {", ".join(target_choices(modules))} (or use "all-linear")'
            )

    def _check_deepspeed(self, value: str) -> None:
        from importlib.util import find_spec

        path = self.resolve_path(value)
        if not path.is_file():
            raise ConfigError(f"{KEY}.deepspeed: the DeepSpeed config {path} does not exist")
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ConfigError(f"{KEY}.deepspeed: {path} is not valid JSON: {exc}") from None
        if find_spec("deepspeed") is None:
            raise ConfigError(
                f"{KEY}.deepspeed: a DeepSpeed config needs the deepspeed package: "
                "pip install deepspeed"
            )

    # -- the overridable steps --------------------------------------------------------------

    def load_model(self, ctx: RunContext, attention: AttentionBackend) -> tuple[Any, Any]:
        """The base model (4-bit NF4 with ``quantization = "nf4"``) and its tokenizer."""
        from transformers import AutoTokenizer

        from qslm.attention.hf import install
        from qslm.train.qlora import load_causal_lm

        o = self.options
        base = self.base()
        model = load_causal_lm(
            base.source,
            attn=install(attention),
            quantization=o.quantization,
            compute_dtype=self.compute_dtype,
            double_quant=o.double_quant,
        )
        tokenizer = AutoTokenizer.from_pretrained(base.source, local_files_only=True)
        return model, tokenizer

    def add_adapter(self, model: Any) -> Any:
        """Wrap the base in trainable LoRA layers (peft); only the adapter trains."""
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        o = self.options
        if o.quantization == "nf4":
            # Casts norms/embeddings to float32 and freezes the 4-bit weights: peft's recipe.
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=o.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        config = LoraConfig(
            r=o.r,
            lora_alpha=o.alpha,
            lora_dropout=o.dropout,
            target_modules=self.targets(),
            bias="none",
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, config)

    @property
    def compute_dtype(self) -> str:
        return "bfloat16" if self.options.bf16 else "float32"

    # -- training ---------------------------------------------------------------------------

    def train(self, ctx: RunContext, data: Dataset, attention: AttentionBackend) -> Artifact:
        with hf_quiet():
            return self._train(ctx, data, attention)

    def _train(self, ctx: RunContext, data: Dataset, attention: AttentionBackend) -> Artifact:
        import torch
        import transformers

        from qslm.data.formatting import tokenize_examples

        self.plan()
        o = self.options
        base = self.base(fetch=True)
        torch.set_num_threads(o.threads or usable_cpus())
        transformers.set_seed(ctx.seed)

        model, tokenizer = self.load_model(ctx, attention)
        if _has_4bit_layers(model):
            from qslm.train.qlora import keep_training_kernels

            keep_training_kernels(model)
        targets = self.targets()
        if isinstance(targets, list):  # also covers bases without safetensors
            self._check_targets(targets, linear_module_names(model))

        def tokenize(records: list[dict[str, Any]]) -> Any:
            return tokenize_examples(
                records, tokenizer, template=o.template, max_length=o.max_length,
                loss_on=o.loss_on,
            )  # fmt: skip

        train_set = tokenize(data.train)
        if not train_set:
            raise QslmError(
                f"the training data gives no example to learn from ({train_set.stats}): "
                f"check the data source, or raise {KEY}.max_length"
            )
        eval_set = tokenize(data.validation) if data.validation else []

        transformers.set_seed(ctx.seed)  # the adapter's initialisation follows the seed
        model = self.add_adapter(model)
        trainable, total = count_parameters(model)
        ctx.log_event(
            "train_start",
            base_model=base.source,
            trainable_parameters=trainable,
            parameters=total,
            examples=len(train_set),
            **{f"train_{k}": v for k, v in train_set.stats.items()},
            quantization=o.quantization,
            attn_implementation=getattr(model.config, "_attn_implementation", None),
        )
        ctx.progress(
            f"  model: {total / 1e6:.2f}M parameters, {trainable / 1e6:.3f}M trainable "
            f"({100 * trainable / total:.2f}%); {len(train_set)} examples"
            + (f", {train_set.stats['truncated']} cut to {o.max_length} tokens"
               if train_set.stats["truncated"] else "")
        )  # fmt: skip

        hf_trainer, recorder = self._hf_trainer(ctx, model, tokenizer, train_set, eval_set)
        losses = LossTracker(ctx, o.logging_every)  # the same numbers after --resume
        losses.attach(hf_trainer)
        result = hf_trainer.train(resume_from_checkpoint=ctx.resume_checkpoint())
        eval_loss = recorder.last_eval_loss
        if eval_set and recorder.last_eval_step != hf_trainer.state.global_step:
            eval_loss = float(hf_trainer.evaluate()["eval_loss"])

        out = ctx.build_dir / ADAPTER_DIR
        merged = False
        if hf_trainer.is_world_process_zero():
            model.save_pretrained(out)  # adapter_config.json + adapter_model.safetensors
            tokenizer.save_pretrained(out)
            if o.merge:
                self._merge(ctx, base, out, tokenizer)
                merged = True
            checkpoints = ctx.checkpoint_dir
            if checkpoints.exists() and not (o.keep_checkpoint and o.checkpoint_every):
                shutil.rmtree(checkpoints)

        reference: dict[str, Any] = {"type": "base"}
        if o.quantization == "nf4":
            reference.update(
                quantization="nf4", compute_dtype=self.compute_dtype, double_quant=o.double_quant
            )
        ctx.manifest["lora"] = {
            "base_model": base.source,
            "base_origin": base.origin,
            "base_hub": base.hub_manifest(o.revision),
            "target_modules": self.targets(),
            "quantization": o.quantization,
            "merged_dir": MERGED_DIR if merged else None,
            "truncated_examples": train_set.stats["truncated"],
            "dropped_examples": train_set.stats["dropped"],
        }
        metrics = {
            **losses.metrics(),
            "train_steps": int(result.global_step),
            "train_tokens": int(hf_trainer.state.num_input_tokens_seen),
            "train_examples": len(train_set),
            "trainable_parameters": trainable,
            "parameters": total,
        }
        if eval_set:
            metrics["eval_loss"] = eval_loss
            if not math.isnan(recorder.first_eval_loss):
                metrics["eval_loss_base"] = recorder.first_eval_loss
        return Artifact(
            model_dir=ADAPTER_DIR,
            tokenizer_dir=ADAPTER_DIR,
            kind="adapter",
            base_model=base.source,
            reference=reference,
            metrics=metrics,
        )

    def training_arguments(self, ctx: RunContext, evaluate: bool) -> Any:
        """The ``TrainingArguments`` of a run (a subclass may adjust them)."""
        from transformers import TrainingArguments

        o = self.options
        resuming = ctx.resume_checkpoint() is not None
        checkpointing = {}
        if o.gradient_checkpointing:
            # transformers 5.x renamed gradient_checkpointing to activation_checkpointing
            new = "activation_checkpointing" in TrainingArguments.__dataclass_fields__
            name = "activation_checkpointing" if new else "gradient_checkpointing"
            checkpointing = {name: True, f"{name}_kwargs": {"use_reentrant": False}}
        return TrainingArguments(
            output_dir=str(ctx.checkpoint_dir),
            per_device_train_batch_size=o.batch_size,
            per_device_eval_batch_size=o.batch_size,
            gradient_accumulation_steps=o.gradient_accumulation_steps,
            learning_rate=o.learning_rate,
            weight_decay=o.weight_decay,
            lr_scheduler_type=o.schedule,
            warmup_steps=o.warmup_ratio,  # a float below 1 is a ratio of the total steps
            num_train_epochs=o.epochs,
            max_steps=o.max_steps or -1,
            max_grad_norm=o.max_grad_norm,
            logging_strategy="steps",
            logging_steps=o.logging_every,
            logging_first_step=True,
            eval_strategy="steps" if evaluate and o.eval_every else "no",
            eval_steps=o.eval_every or None,
            eval_on_start=evaluate and not resuming,  # the base's loss, to compare with
            save_strategy="steps" if o.checkpoint_every else "no",
            save_steps=o.checkpoint_every or 500,
            save_total_limit=1,
            seed=ctx.seed,
            data_seed=ctx.seed,
            bf16=o.bf16,
            include_num_input_tokens_seen="non_padding",
            deepspeed=str(self.resolve_path(o.deepspeed)) if o.deepspeed else None,
            **trainer_arguments(ctx),  # report_to: [track]'s Trainer integration, or none
            disable_tqdm=True,
            dataloader_pin_memory=False,
            **checkpointing,
        )

    def _hf_trainer(
        self, ctx: RunContext, model: Any, tokenizer: Any, train_set: list, eval_set: list
    ) -> tuple[Any, EvalLogToContext]:
        from transformers import Trainer as HFTrainer
        from transformers.trainer_callback import PrinterCallback

        from qslm.data.formatting import data_collator

        recorder = EvalLogToContext(ctx)
        callbacks = [recorder.callback()]
        selector = module_selection_callback(ctx, model)
        if selector is not None:
            callbacks.append(selector)
        trainer = HFTrainer(
            model=model,
            args=self.training_arguments(ctx, evaluate=bool(eval_set)),
            train_dataset=train_set,
            eval_dataset=eval_set or None,
            data_collator=data_collator(tokenizer),
            processing_class=tokenizer,
            callbacks=callbacks,
        )
        trainer.remove_callback(PrinterCallback)  # it prints raw dicts; the recorder reports
        return trainer, recorder

    def _merge(self, ctx: RunContext, base: BaseModel, adapter: Any, tokenizer: Any) -> None:
        from qslm.train.qlora import save_merged

        o = self.options
        ctx.progress(f"  merging the adapter into the base -> {MERGED_DIR}/")
        save_merged(
            base.source,
            adapter,
            ctx.build_dir / MERGED_DIR,
            tokenizer,
            quantization=o.quantization,
            compute_dtype=self.compute_dtype,
            double_quant=o.double_quant,
        )


class EvalLogToContext(LogToContext):
    """:class:`LogToContext` that also records validation losses, on the main process only
    (under torchrun every rank runs the callbacks; one training log is enough)."""

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.first_eval_loss = float("nan")
        self.last_eval_loss = float("nan")
        self.last_eval_step = -1

    def callback(self) -> Any:
        from transformers import TrainerCallback

        recorder = self

        class Callback(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                if state.is_world_process_zero:
                    recorder.on_log(state, logs or {})

        return Callback()

    def on_log(self, state: Any, logs: dict[str, Any]) -> None:
        if "eval_loss" in logs:
            loss = float(logs["eval_loss"])
            if math.isnan(self.first_eval_loss):
                self.first_eval_loss = loss
            self.last_eval_loss, self.last_eval_step = loss, state.global_step
            self.ctx.log_event("eval", step=state.global_step, eval_loss=loss)
            self.ctx.progress(f"  step {state.global_step}/{state.max_steps}  eval loss {loss:.3f}")
        super().on_log(state, logs)


def module_selection_callback(ctx: RunContext, model: Any) -> Any:
    """The ``[train.select_modules]`` callback for this run, or None."""
    from qslm.train.module_select import callback_for

    return callback_for(ctx, model)


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


def _has_4bit_layers(model: Any) -> bool:
    """Whether bitsandbytes quantised some layer (checked by class name, so a model without
    4-bit layers never imports bitsandbytes)."""
    return any(type(m).__name__ in ("Linear4bit", "LinearNF4") for m in model.modules())
