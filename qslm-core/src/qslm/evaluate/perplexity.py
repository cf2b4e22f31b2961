"""Held-out perplexity of the trained model beside that of the model it started from.

The validation texts are packed exactly as the trainer packs training texts (each text preceded
by the end-of-text token, cut into blocks of the model's context length), and perplexity is
``exp`` of the mean negative log-likelihood over every predicted token. The reference is the
untrained model: for a from-scratch build the same random initialisation rebuilt from its seed,
for an adapter the base model.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import Field

from qslm.components import Artifact, Dataset, Evaluator, Options
from qslm.errors import QslmError
from qslm.quiet import hf_quiet
from qslm.train.packing import pack, record_texts, token_stream

if TYPE_CHECKING:
    from qslm.context import RunContext


class PerplexityOptions(Options):
    """``[evaluate.perplexity]`` options."""

    batch_size: int = Field(8, ge=1, description="Blocks per forward pass.")
    max_tokens: int = Field(
        0, ge=0, description="Evaluate on at most this many validation tokens; 0 = all."
    )
    context_length: int = Field(
        0,
        ge=0,
        description="Tokens per block; 0 = the model's max_position_embeddings "
        "(set it for models with very long contexts).",
    )


class Perplexity(Evaluator):
    """Held-out perplexity of the trained and the untrained model, and their ratio."""

    Options = PerplexityOptions
    options: PerplexityOptions

    def evaluate(self, ctx: RunContext, artifact: Artifact, data: Dataset) -> dict[str, float]:
        with hf_quiet():
            return self._evaluate(ctx, artifact, data)

    def _evaluate(self, ctx: RunContext, artifact: Artifact, data: Dataset) -> dict[str, float]:
        from transformers import AutoTokenizer

        texts = record_texts(data.validation, split="validation")
        tokenizer = AutoTokenizer.from_pretrained(ctx.build_dir / artifact.tokenizer_dir)
        separator = tokenizer.eos_token_id
        if separator is None:
            raise QslmError(f"the tokenizer in {artifact.tokenizer_dir}/ has no eos token")
        ids = token_stream(tokenizer, texts, separator)
        if self.options.max_tokens:
            ids = ids[: self.options.max_tokens + 1]
        attn = _attn_implementation(ctx)

        trained = load_trained(ctx, artifact, attn)
        blocks = pack(ids, self._context_length(trained), keep_remainder=True)
        nll, n = self.total_nll(trained, blocks)
        del trained
        reference = load_reference(ctx, artifact, attn)
        nll_ref, _ = self.total_nll(reference, blocks)
        ppl, ppl_ref = math.exp(nll / n), math.exp(nll_ref / n)
        return {
            "perplexity": ppl,
            "perplexity_untrained": ppl_ref,
            "perplexity_ratio": ppl_ref / ppl,
            "eval_tokens": n,
        }

    def _context_length(self, model: Any) -> int:
        return self.options.context_length or int(model.config.max_position_embeddings)

    def total_nll(self, model: Any, blocks: list[list[int]]) -> tuple[float, int]:
        """Summed negative log-likelihood (nats) of every predicted token, and their count."""
        import torch
        import torch.nn.functional as F

        device = next(model.parameters()).device
        full = [b for b in blocks if len(b) == len(blocks[0])]
        batches = [
            full[i : i + self.options.batch_size]
            for i in range(0, len(full), self.options.batch_size)
        ]
        batches += [[b] for b in blocks[len(full) :]]
        total, count = 0.0, 0
        model.eval()
        with torch.inference_mode():
            for batch in batches:
                ids = torch.tensor(batch, dtype=torch.long, device=device)
                logits = model(input_ids=ids).logits[:, :-1].float()
                targets = ids[:, 1:]
                total += F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"
                ).item()
                count += targets.numel()
        return total, count


def _attn_implementation(ctx: RunContext) -> str | None:
    """Evaluate with the pipeline's attention backend when there is one (so a sampled backend
    is measured as trained), else with transformers' default."""
    ref = getattr(getattr(ctx, "config", None), "attention", None)
    if ref is None:
        return None
    from qslm.attention.hf import install

    return install(ref.create())


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_trained(ctx: RunContext, artifact: Artifact, attn: str | None) -> Any:
    """The trained model of an artifact: full weights, or an adapter on its base model."""
    from transformers import AutoModelForCausalLM

    path = ctx.build_dir / artifact.model_dir
    if artifact.kind == "full":
        return AutoModelForCausalLM.from_pretrained(path, attn_implementation=attn).to(_device())
    if artifact.kind == "adapter":
        try:
            from peft import PeftModel
        except ImportError:
            raise QslmError(
                "perplexity: evaluating an adapter needs peft (pip install peft)"
            ) from None

        base = _base_model(artifact, attn)
        return PeftModel.from_pretrained(base, path)
    raise QslmError(f"perplexity: unknown artifact kind {artifact.kind!r}")


def load_reference(ctx: RunContext, artifact: Artifact, attn: str | None) -> Any:
    """The model training started from, as the artifact's ``reference`` describes it:
    ``{"type": "init", "seed": S}`` rebuilds a random initialisation from the saved config,
    ``{"type": "base"}`` (or an adapter artifact) loads ``artifact.base_model``."""
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    kind = artifact.reference.get("type", "base" if artifact.kind == "adapter" else None)
    if kind == "init":
        config = AutoConfig.from_pretrained(ctx.build_dir / artifact.model_dir)
        transformers.set_seed(int(artifact.reference["seed"]))
        model = AutoModelForCausalLM.from_config(config, attn_implementation=attn)
        expected = artifact.reference.get("init_sha256")
        if expected:
            from qslm.train.scratch import state_sha256

            if state_sha256(model) != expected:
                ctx.progress(
                    "  warning: the rebuilt initial model differs from the one training "
                    "started from (another transformers or torch version?); the "
                    "untrained perplexity is that of an equivalent random model"
                )
                ctx.log_event("warning", message="untrained reference not reproduced exactly")
        return model.to(_device())
    if kind == "base":
        return _base_model(artifact, attn)
    raise QslmError(
        f"perplexity: the artifact's reference {artifact.reference!r} names no "
        "known reference model (expected type 'init' or 'base')"
    )


def _base_model(artifact: Artifact, attn: str | None) -> Any:
    """The adapter's base, loaded the way it was trained on: a QLoRA adapter (reference
    ``quantization = "nf4"``) on the same 4-bit NF4 base, so the adapter is measured on the
    weights it learned against, and the reference is that same quantised base (the ratio then
    shows what the adapter adds, not what quantisation costs)."""
    from qslm.train.qlora import load_causal_lm

    if not artifact.base_model:
        raise QslmError("perplexity: an adapter artifact must name its base_model")
    quantization = artifact.reference.get("quantization", "none")
    model = load_causal_lm(
        artifact.base_model,
        attn=attn,
        quantization=quantization,
        compute_dtype=artifact.reference.get("compute_dtype", "float32"),
        double_quant=artifact.reference.get("double_quant", True),
    )
    return model if quantization == "nf4" else model.to(_device())  # 4-bit: placed at load
