"""How far an attention backend's outputs are from exact attention inside the trained model, layer
by layer, and what it does to held-out perplexity.

Layer errors are measured in isolation: in one forward pass on the validation blocks, every
attention call computes both the backend's output and the exact one on the same queries, keys,
values and mask, records ``sum ||o_backend - o_exact||^2`` and ``sum ||o_exact||^2`` per
layer, and passes the exact output on, so a layer's error is not compounded by earlier ones.
The layer's relative error is the square root of their ratio. Perplexity is then computed with
the backend throughout and with exact attention throughout.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import Field

from qslm.components import Artifact, AttentionBackend, Dataset, Evaluator, Options
from qslm.errors import QslmError
from qslm.quiet import hf_quiet

if TYPE_CHECKING:
    from qslm.context import RunContext


class AttentionErrorOptions(Options):
    """``[evaluate.attention-error]`` options."""

    backend: str = Field(
        "", description="Attention backend to measure; empty = the pipeline's [attention]."
    )
    backend_options: dict[str, Any] = Field(
        default_factory=dict, description="Options of that backend (when backend is set)."
    )
    batch_size: int = Field(8, ge=1, description="Blocks per forward pass.")
    max_tokens: int = Field(
        2048, ge=0, description="Evaluate on at most this many validation tokens; 0 = all."
    )


class AttentionError(Evaluator):
    """Per-layer relative error of the backend's attention outputs against exact attention, and
    the perplexity with the backend beside the perplexity with exact attention."""

    Options = AttentionErrorOptions
    options: AttentionErrorOptions

    def backend(self, ctx: RunContext) -> AttentionBackend:
        """The backend to measure: the ``backend`` option, else the pipeline's."""
        if self.options.backend:
            from qslm.components import validate_options
            from qslm.plugins import get_registry

            cls = get_registry().get("attention", self.options.backend, key="backend").load()
            opts = validate_options(
                cls.Options, self.options.backend_options, file="attention-error", prefix=""
            )
            return cls(opts)
        ref = getattr(getattr(ctx, "config", None), "attention", None)
        if ref is None:
            raise QslmError("attention-error: no backend option and no [attention] in the pipeline")
        return ref.create()

    def evaluate(self, ctx: RunContext, artifact: Artifact, data: Dataset) -> dict[str, float]:
        with hf_quiet():
            return self._evaluate(ctx, artifact, data)

    def _evaluate(self, ctx: RunContext, artifact: Artifact, data: Dataset) -> dict[str, float]:
        from transformers import AutoTokenizer

        from qslm.attention.hf import install
        from qslm.evaluate.perplexity import Perplexity, load_trained
        from qslm.train.packing import pack, record_texts, token_stream

        backend = self.backend(ctx)
        tokenizer = AutoTokenizer.from_pretrained(ctx.build_dir / artifact.tokenizer_dir)
        ids = token_stream(
            tokenizer, record_texts(data.validation, split="validation"), tokenizer.eos_token_id
        )
        if self.options.max_tokens:
            ids = ids[: self.options.max_tokens + 1]
        ppl = Perplexity(Perplexity.Options(batch_size=self.options.batch_size))

        compare = _Comparison(backend)
        model = load_trained(ctx, artifact, install(compare, name_prefix="qslm_compare_"))
        blocks = pack(ids, int(model.config.max_position_embeddings), keep_remainder=True)
        nll_exact, n = ppl.total_nll(model, blocks)  # exact outputs flow on
        del model
        model = load_trained(ctx, artifact, install(backend))
        nll_backend, _ = ppl.total_nll(model, blocks)
        metrics: dict[str, float] = {}
        errors = compare.relative_errors()
        for layer, err in sorted(errors.items()):
            metrics[f"attention_rel_error_layer_{layer}"] = err
        metrics["attention_rel_error_mean"] = sum(errors.values()) / max(len(errors), 1)
        p_exact, p_backend = math.exp(nll_exact / n), math.exp(nll_backend / n)
        metrics.update(
            perplexity_exact=p_exact,
            perplexity_backend=p_backend,
            perplexity_change=p_backend / p_exact - 1.0,
            eval_tokens=n,
        )
        return metrics


class _Comparison(AttentionBackend):
    """Runs the measured backend and exact attention side by side; returns the exact output."""

    def __init__(self, backend: AttentionBackend) -> None:
        super().__init__()
        self.inner = backend
        self.mask_interface = backend.mask_interface  # type: ignore[misc]
        self.sq_err: dict[int, float] = {}
        self.sq_ref: dict[int, float] = {}

    def relative_errors(self) -> dict[int, float]:
        return {
            i: math.sqrt(self.sq_err[i] / self.sq_ref[i]) if self.sq_ref[i] else 0.0
            for i in self.sq_err
        }

    def function(self) -> Any:
        from qslm.attention.exact import ExactAttention

        inner, exact = self.inner.function(), ExactAttention().function()

        def compare(module, query, key, value, attention_mask, **kwargs):
            out, _ = inner(module, query, key, value, attention_mask, **kwargs)
            ref, weights = exact(module, query, key, value, attention_mask, **kwargs)
            layer = int(getattr(module, "layer_idx", 0) or 0)
            err = (out.float() - ref.float()).pow(2).sum().item()
            self.sq_err[layer] = self.sq_err.get(layer, 0.0) + err
            self.sq_ref[layer] = self.sq_ref.get(layer, 0.0) + ref.float().pow(2).sum().item()
            return ref, weights

        return compare
