"""A drop-in ``torch.nn.MultiheadAttention`` whose attention is any qslm backend.

Same constructor (plus ``backend``), same parameters (a state dict of one loads into the other)
and the same ``forward(query, key, value, key_padding_mask=None, need_weights=True,
attn_mask=None, average_attn_weights=True, is_causal=False)`` with torch's mask conventions:
boolean masks are True where attention is *not* allowed, float masks are added to the scores.
``add_bias_kv`` and ``add_zero_attn`` are not supported.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from qslm.components import AttentionBackend


def _backend(backend: AttentionBackend | str | None) -> AttentionBackend:
    if backend is None:
        from qslm.attention.exact import ExactAttention

        return ExactAttention()
    if isinstance(backend, str):
        from qslm.plugins import get_registry

        return get_registry().get("attention", backend, key="backend").load()()
    return backend


def _additive(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
            mask, float("-inf")
        )
    return mask.to(dtype)


class MultiheadAttention(nn.MultiheadAttention):
    """``torch.nn.MultiheadAttention`` with ``backend`` (an :class:`AttentionBackend` or a
    registered name; default ``exact``) computing the attention."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        backend: AttentionBackend | str | None = None,
    ) -> None:
        if add_bias_kv or add_zero_attn:
            raise ValueError(
                "qslm MultiheadAttention does not support add_bias_kv or add_zero_attn; "
                "use torch.nn.MultiheadAttention for those"
            )
        super().__init__(
            embed_dim,
            num_heads,
            dropout=dropout,
            bias=bias,
            kdim=kdim,
            vdim=vdim,
            batch_first=batch_first,
            device=device,
            dtype=dtype,
        )
        self.backend = _backend(backend)
        self._attend = self.backend.function()

    def forward(  # type: ignore[override]
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = (
                x.unsqueeze(1 - int(self.batch_first)) for x in (query, key, value)
            )
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        if not self.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        b, L, E = query.shape
        S = key.shape[1]
        h, d = self.num_heads, self.head_dim
        if self._qkv_same_embed_dim:
            wq, wk, wv = self.in_proj_weight.chunk(3)
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        bq = bk = bv = None
        if self.in_proj_bias is not None:
            bq, bk, bv = self.in_proj_bias.chunk(3)
        q = F.linear(query, wq, bq).view(b, L, h, d).transpose(1, 2)
        k = F.linear(key, wk, bk).view(b, S, h, d).transpose(1, 2)
        v = F.linear(value, wv, bv).view(b, S, h, d).transpose(1, 2)

        mask = torch.zeros(b, h, L, S, dtype=q.dtype, device=q.device)
        if attn_mask is None and is_causal:
            attn_mask = torch.ones(L, S, dtype=torch.bool, device=q.device).triu(1)
        am = _additive(attn_mask, q.dtype)
        if am is not None:
            mask = mask + (am.view(b, h, L, S) if am.dim() == 3 else am)
        kpm = _additive(key_padding_mask, q.dtype)
        if kpm is not None:
            mask = mask + kpm.view(b, 1, 1, S)
        mask = mask.clamp_min(torch.finfo(q.dtype).min)  # transformers' convention, no -inf

        module = _Module(training=self.training)
        dropout = self.dropout if self.training else 0.0
        out, weights = self._attend(module, q, k, v, mask, scaling=d**-0.5, dropout=dropout)
        out = self.out_proj(out.reshape(b, L, E))
        if not self.batch_first:
            out = out.transpose(0, 1)
        if unbatched:
            out = out.squeeze(1 - int(self.batch_first))
        if not need_weights:
            return out, None
        if weights is None:  # the exact backend returns none: they are the softmax
            from qslm.attention.probabilities import probabilities

            weights, _ = probabilities(q, k, mask, scaling=d**-0.5)
        weights = weights.to(out.dtype)
        if average_attn_weights:
            weights = weights.mean(1)
        return out, (weights.squeeze(0) if unbatched else weights)


class _Module:
    """What a transformers attention function reads from its calling module."""

    is_causal = False
    num_key_value_groups = 1
    layer_idx = 0

    def __init__(self, training: bool) -> None:
        self.training = training
