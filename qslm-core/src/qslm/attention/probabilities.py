"""Exact attention probabilities with every mask convention a backend can receive."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def repeat_kv(x: torch.Tensor, heads: int) -> torch.Tensor:
    """Key/value heads repeated to ``heads`` query heads (grouped-query attention)."""
    kv_heads = x.shape[1]
    if kv_heads == heads:
        return x
    if heads % kv_heads:
        raise ValueError(f"{heads} query heads are not a multiple of {kv_heads} key/value heads")
    return x.repeat_interleave(heads // kv_heads, dim=1)


def probabilities(
    query: torch.Tensor,
    key: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    scaling: float | None = None,
    causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(Q K^T * scaling + mask)`` and the boolean mask of keys a row may attend to.

    ``attention_mask`` is boolean (True = attend), additive float (entries at or below half
    the dtype's minimum count as masked, as transformers builds them) or None, in which case
    ``causal`` applies the causal mask aligned to the last key (decoding with a cache).
    Computed in float32 at least. A row with no key to attend to gets all-zero probabilities.
    """
    import torch

    dtype = torch.promote_types(query.dtype, torch.float32)
    q, k = query.to(dtype), repeat_kv(key, query.shape[1]).to(dtype)
    if scaling is None:
        scaling = 1.0 / math.sqrt(query.shape[-1])
    scores = (q @ k.transpose(-1, -2)) * scaling
    q_len, k_len = scores.shape[-2:]
    allowed = torch.ones(1, 1, q_len, k_len, dtype=torch.bool, device=scores.device)
    if attention_mask is not None:
        mask = attention_mask[..., -k_len:]
        if mask.dtype == torch.bool:
            allowed = allowed & mask
        else:
            mask = mask.to(dtype)
            allowed = allowed & (mask > torch.finfo(attention_mask.dtype).min / 2)
            scores = scores + mask.masked_fill(~allowed, 0.0)
    elif causal and q_len > 1:
        allowed = allowed & torch.ones_like(allowed).tril(k_len - q_len)
    scores = scores.masked_fill(~allowed, float("-inf"))
    p = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return p, allowed
