"""The ``unsloth`` trainer: the ``lora`` trainer with the model loaded and adapted by Unsloth.

Only two steps differ from ``lora``: :meth:`UnslothTrainer.load_model` calls
``FastLanguageModel.from_pretrained`` and :meth:`UnslothTrainer.add_adapter` calls
``FastLanguageModel.get_peft_model``. Data, formatting, the Hugging Face ``Trainer``,
checkpoints and resume, and the build layout (``adapter/`` with a PEFT adapter and the
tokenizer, an Artifact of kind "adapter") are the ``lora`` trainer's, so every evaluator and
``qslm builds`` command works on these builds unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from qslm.api import Artifact, AttentionBackend, ConfigError, Dataset, QslmError
from qslm.train.lora import KEY, LoraOptions, LoraTrainer
from qslm_unsloth.first_import import import_unsloth

if TYPE_CHECKING:
    from qslm.api import RunContext

DTYPES = {"auto": None, "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


class UnslothOptions(LoraOptions):
    """``[train.options]`` of the ``unsloth`` trainer: the ``lora`` trainer's options, with
    Unsloth's own names for loading (``load_in_4bit``, ``dtype``) and Unsloth's defaults where
    they differ (dropout 0, Unsloth's gradient checkpointing). ``max_length`` is passed to
    ``from_pretrained`` as ``max_seq_length``."""

    dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout on the adapter's input. Unsloth's fast LoRA kernels on a GPU "
        "apply only with 0 (its default); other values train on the slower generic path.",
    )
    load_in_4bit: bool = Field(
        False,
        description="Load the base in 4-bit NF4 with bitsandbytes (QLoRA), Unsloth's "
        "load_in_4bit. On a CPU, Unsloth first checks that bitsandbytes' CPU kernels work and "
        "loads 16-bit weights otherwise; the manifest records which happened.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Weights' dtype, Unsloth's dtype argument: \"auto\" lets Unsloth choose "
        "(bfloat16 where the device supports it, else float16 on a GPU, float32 otherwise).",
    )
    gradient_checkpointing: bool | Literal["unsloth"] = Field(
        "unsloth",
        description='Recompute activations in the backward pass: "unsloth" (Unsloth\'s '
        "variant, which on a GPU also offloads activations to host memory), true (plain "
        "recomputation) or false.",
    )

    quantization: Literal["none", "nf4"] = Field(
        "none",
        description="The lora trainer's switch for QLoRA; with unsloth write load_in_4bit = "
        'true instead (only "none" is accepted here).',
    )
    double_quant: bool = Field(
        True,
        description="Unsloth's 4-bit loading always quantises the quantisation scales too "
        "(QLoRA's double quantisation); false is refused.",
    )

    @model_validator(mode="after")
    def _unsloth_decides_quantization(self) -> UnslothOptions:
        if self.quantization != "none":
            raise ValueError(
                "quantization is the lora trainer's option; with unsloth write \"load_in_4bit "
                '= true" (4-bit NF4 through Unsloth) instead'
            )
        if not self.double_quant:
            raise ValueError("double_quant = false: Unsloth always uses double quantisation")
        return self


class UnslothTrainer(LoraTrainer):
    """Fine-tune a causal LM with LoRA through Unsloth's ``FastLanguageModel`` (QLoRA with
    ``load_in_4bit = true``); on a machine without a GPU through Unsloth's CPU backend."""

    Options = UnslothOptions
    options: UnslothOptions

    def plan(self) -> list[str]:
        o = self.options
        base = self.base()  # the cheap checks first: none of them imports transformers
        targets = self.targets()
        if isinstance(targets, list):
            modules = base.module_names()
            if modules is not None:
                self._check_targets(targets, modules)
        if o.load_in_4bit:
            from qslm.train.qlora import require_bitsandbytes

            require_bitsandbytes(f"{KEY}.load_in_4bit")
        if o.deepspeed:
            self._check_deepspeed(o.deepspeed)
        info = import_unsloth()  # here, at pre-flight: before the pipeline imports transformers
        where = "CPU fallback (no GPU found)" if info.cpu_fallback else info.device
        steps = f"{o.max_steps} steps" if o.max_steps else f"{o.epochs:g} epochs"
        return [
            f"Unsloth {info.version} on {where}",
            f"base {base.source} ({base.origin}), dtype {o.dtype}"
            + (", 4-bit NF4 (QLoRA)" if o.load_in_4bit else ""),
            f"LoRA r={o.r} alpha={o.alpha:g} dropout={o.dropout:g} on "
            f"{targets if isinstance(targets, str) else ', '.join(targets)}, gradient "
            f"checkpointing {o.gradient_checkpointing}",
            f"{steps}, batch {o.batch_size} x {o.gradient_accumulation_steps}, learning rate "
            f"{o.learning_rate:g} ({o.schedule}), template {o.template}, loss on {o.loss_on}",
        ]

    def train(self, ctx: RunContext, data: Dataset, attention: AttentionBackend) -> Artifact:
        info = import_unsloth()  # before the shared code below imports transformers
        if info.imported_before:
            ctx.progress(
                f"  warning: {', '.join(info.imported_before)} imported before Unsloth; "
                "some of its GPU optimisations may be missing"
            )
        ctx.manifest["unsloth"] = info.as_manifest()
        self._seed = ctx.seed  # get_peft_model seeds the adapter's initialisation itself
        artifact = super().train(ctx, data, attention)
        loaded = self._loaded
        ctx.manifest["unsloth"].update(loaded)
        # The shared code describes the base from `quantization`, always "none" here; say what
        # Unsloth really loaded, so evaluators rebuild the same base.
        if loaded["load_in_4bit"]:
            ctx.manifest["lora"]["quantization"] = "nf4"
            artifact.reference.update(
                quantization="nf4", compute_dtype=loaded["dtype"], double_quant=True
            )
        return artifact

    def load_model(self, ctx: RunContext, attention: AttentionBackend) -> tuple[Any, Any]:
        """``FastLanguageModel.from_pretrained`` on the base, in the options' dtype and
        precision; on the CPU backend with the pipeline's attention backend."""
        from unsloth import FastLanguageModel

        from qslm.attention.exact import ExactAttention

        o = self.options
        info = import_unsloth()
        kwargs: dict[str, Any] = {}
        if info.cpu_fallback:
            # The CPU backend loads through stock transformers, so qslm's attention backend
            # and the offline flag apply as they do for the lora trainer.
            from qslm.attention.hf import install

            kwargs.update(attn_implementation=install(attention), local_files_only=True)
        elif not isinstance(attention, ExactAttention):
            raise QslmError(
                f"attention.backend: Unsloth on {info.device} replaces the model's attention "
                f"with its own kernels, so the backend {type(attention).__name__} would not be "
                'used; use backend = "exact" with the unsloth trainer, or the lora trainer'
            )
        dtype = DTYPES[o.dtype]
        if dtype is not None:
            import torch

            dtype = getattr(torch, dtype)
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=self.base().source,
            max_seq_length=o.max_length,
            load_in_4bit=o.load_in_4bit,
            dtype=dtype,
            **kwargs,
        )
        self._loaded = {
            "load_in_4bit": bool(getattr(model, "is_loaded_in_4bit", False)),
            "dtype": str(model.dtype).removeprefix("torch."),
        }
        if self._loaded["load_in_4bit"]:
            # what the shared merge step reads: merge into the dequantised NF4 weights the
            # adapter was trained against
            self.options = self.options.model_copy(update={"quantization": "nf4"})
        elif o.load_in_4bit:
            ctx.progress("  note: Unsloth loaded 16-bit weights (bitsandbytes 4-bit unusable here)")
        return model, tokenizer

    def add_adapter(self, model: Any) -> Any:
        """``FastLanguageModel.get_peft_model``: trainable LoRA layers (a peft model)."""
        from unsloth import FastLanguageModel

        o = self.options
        targets = self.targets()
        if targets == "all-linear" and not import_unsloth().cpu_fallback:
            targets = linear_targets(model)
        return FastLanguageModel.get_peft_model(
            model,
            r=o.r,
            lora_alpha=o.alpha,
            lora_dropout=o.dropout,
            target_modules=targets,
            bias="none",
            use_gradient_checkpointing=o.gradient_checkpointing,
            random_state=self._seed,
        )

    def training_arguments(self, ctx: RunContext, evaluate: bool) -> Any:
        if self._loaded["dtype"] == "bfloat16" and not self.options.bf16:
            # bfloat16 weights (dtype "auto" on a device that has it) train under bf16 autocast,
            # as Unsloth's own examples set it; the shared code reads the option.
            self.options = self.options.model_copy(update={"bf16": True})
        args = super().training_arguments(ctx, evaluate)
        # get_peft_model already set up Unsloth's checkpointing on the model; the Trainer
        # switching on its own as well would replace Unsloth's variant on a GPU.
        for name in ("gradient_checkpointing", "activation_checkpointing"):
            if getattr(args, name, False):
                setattr(args, name, False)
        return args


def linear_targets(model: Any) -> list[str]:
    """The short names of every linear layer but the output head: "all-linear" spelled out,
    for Unsloth's GPU path, which patches the modules it is given by name."""
    import torch

    head = model.get_output_embeddings()
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    }
    if not names:
        raise ConfigError(f"{KEY}.target_modules: the model has no linear layer to adapt")
    return sorted(names)
