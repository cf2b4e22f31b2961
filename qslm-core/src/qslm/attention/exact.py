"""Exact attention: PyTorch scaled-dot-product attention, the reference every other backend is
measured against."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from qslm.components import AttentionBackend, Options


class ExactAttention(AttentionBackend):
    """Exact softmax attention through ``torch.nn.functional.scaled_dot_product_attention``.

    It is Hugging Face's own ``sdpa`` attention function, so a model trained with it is the
    same model as one trained with ``attn_implementation="sdpa"``.
    """

    class Options(Options):
        """No options: exact attention has nothing to tune."""

    # Boolean masks, or None for a plain causal batch (SDPA then uses its causal kernel).
    mask_interface: ClassVar[str] = "sdpa"

    def function(self) -> Callable[..., Any]:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward
