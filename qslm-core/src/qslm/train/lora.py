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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from qslm.components import Artifact, AttentionBackend, Dataset, Trainer
from qslm.errors import ConfigError, QslmError
from qslm.quiet import hf_quiet
from qslm.resources import torch_threads
from qslm.tracking import trainer_arguments
from qslm.train.base_model import (
    BaseModel,
    count_parameters,
    fetch_base,
    linear_module_names,
    resolve_base,
    target_choices,
    unknown_targets,
)
from qslm.train.callbacks import EvalLogToContext, LossTracker
from qslm.train.lora_options import LoraOptions

if TYPE_CHECKING:
    from qslm.context import RunContext
    from qslm.resources import Estimate

ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"
KEY = "train.options"


@dataclass
class _Run:
    """What the training steps hand on: the model with its adapter and the examples."""

    base: BaseModel
    model: Any
    tokenizer: Any
    train_set: Any
    eval_set: Any
    trainable: int
    total: int


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
        run = self._prepare(ctx, data, attention)
        hf_trainer, fit = self._fit(ctx, run)
        merged = self._save(ctx, run, hf_trainer)
        return self._artifact(ctx, run, fit, merged)

    def _prepare(self, ctx: RunContext, data: Dataset, attention: AttentionBackend) -> _Run:
        """The base model with its adapter, and the tokenized examples."""
        import torch
        import transformers

        from qslm.data.formatting import tokenize_examples

        self.plan()
        o = self.options
        base = self.base(fetch=True)
        torch.set_num_threads(torch_threads(o.threads))
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
        return _Run(base, model, tokenizer, train_set, eval_set, trainable, total)

    def _fit(self, ctx: RunContext, run: _Run) -> tuple[Any, dict[str, Any]]:
        """Train (from the last checkpoint on ``--resume``); the HF trainer and the metrics."""
        hf_trainer, recorder = self._hf_trainer(
            ctx, run.model, run.tokenizer, run.train_set, run.eval_set
        )
        losses = LossTracker(ctx, self.options.logging_every)  # the same numbers after --resume
        losses.attach(hf_trainer)
        result = hf_trainer.train(resume_from_checkpoint=ctx.resume_checkpoint())
        eval_loss = recorder.last_eval_loss
        if run.eval_set and recorder.last_eval_step != hf_trainer.state.global_step:
            eval_loss = float(hf_trainer.evaluate()["eval_loss"])
        metrics = {
            **losses.metrics(),
            "train_steps": int(result.global_step),
            "train_tokens": int(hf_trainer.state.num_input_tokens_seen),
            "train_examples": len(run.train_set),
            "trainable_parameters": run.trainable,
            "parameters": run.total,
        }
        if run.eval_set:
            metrics["eval_loss"] = eval_loss
            if not math.isnan(recorder.first_eval_loss):
                metrics["eval_loss_base"] = recorder.first_eval_loss
        return hf_trainer, metrics

    def _save(self, ctx: RunContext, run: _Run, hf_trainer: Any) -> bool:
        """On the main process: the adapter and tokenizer (and the merged model); whether a
        merged model was written."""
        o = self.options
        if not hf_trainer.is_world_process_zero():
            return False
        out = ctx.build_dir / ADAPTER_DIR
        run.model.save_pretrained(out)  # adapter_config.json + adapter_model.safetensors
        run.tokenizer.save_pretrained(out)
        if o.merge:
            self._merge(ctx, run.base, out, run.tokenizer)
        checkpoints = ctx.checkpoint_dir
        if checkpoints.exists() and not (o.keep_checkpoint and o.checkpoint_every):
            shutil.rmtree(checkpoints)
        return o.merge

    def _artifact(
        self, ctx: RunContext, run: _Run, metrics: dict[str, Any], merged: bool
    ) -> Artifact:
        """The adapter as an :class:`Artifact`, and what the manifest says of it."""
        o = self.options
        reference: dict[str, Any] = {"type": "base"}
        if o.quantization == "nf4":
            reference.update(
                quantization="nf4", compute_dtype=self.compute_dtype, double_quant=o.double_quant
            )
        ctx.manifest["lora"] = {
            "base_model": run.base.source,
            "base_origin": run.base.origin,
            "base_hub": run.base.hub_manifest(o.revision),
            "target_modules": self.targets(),
            "quantization": o.quantization,
            "merged_dir": MERGED_DIR if merged else None,
            "truncated_examples": run.train_set.stats["truncated"],
            "dropped_examples": run.train_set.stats["dropped"],
        }
        return Artifact(
            model_dir=ADAPTER_DIR,
            tokenizer_dir=ADAPTER_DIR,
            kind="adapter",
            base_model=run.base.source,
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


def module_selection_callback(ctx: RunContext, model: Any) -> Any:
    """The ``[train.select_modules]`` callback for this run, or None."""
    from qslm.train.module_select import callback_for

    return callback_for(ctx, model)


def _has_4bit_layers(model: Any) -> bool:
    """Whether bitsandbytes quantised some layer (checked by class name, so a model without
    4-bit layers never imports bitsandbytes)."""
    return any(type(m).__name__ in ("Linear4bit", "LinearNF4") for m in model.modules())
