"""Memory and disk a from-scratch Llama-style model will need, from its options alone.

An estimate, not a measurement: float32 weights, gradients and AdamW's two moments (16 bytes
a parameter), plus the activations autograd keeps for one forward pass of a batch. It only has
to tell a size that fits from one that cannot (a billion-token vocabulary, a million-wide
residual stream), which differ by orders of magnitude; ``--force`` overrides it.
"""

from __future__ import annotations

import math
from typing import Any

from qslm.resources import Estimate, format_bytes

_F32 = 4
_MARGIN = 256 * 2**20  # torch, transformers and the data themselves


def llama_parameters(
    vocab: int, hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int, tied: bool
) -> int:
    """Parameters of a ``LlamaForCausalLM`` with these sizes (as transformers builds it)."""
    head_dim = hidden // heads
    attention = 2 * hidden * hidden + 2 * hidden * kv_heads * head_dim  # q, o; k, v
    block = attention + 3 * hidden * intermediate + 2 * hidden  # SwiGLU and two RMSNorms
    embeddings = vocab * hidden * (1 if tied else 2)
    return embeddings + layers * block + hidden


def activation_bytes(
    batch: int,
    context: int,
    hidden: int,
    intermediate: int,
    heads: int,
    layers: int,
    vocab: int,
    *,
    width: int = _F32,
    checkpointing: bool = False,
) -> int:
    """What autograd keeps of one forward pass of ``batch`` x ``context`` tokens through a
    decoder of these sizes, at ``width`` bytes a value; with gradient ``checkpointing`` only
    each layer's input is kept, and one layer's activations are recomputed at a time."""
    tokens = batch * context
    # per layer and token: the residual, norms, q/k/v/o and the SwiGLU's three projections;
    # per layer: the attention weights (batch x heads x context^2); then logits and their grads
    per_layer = tokens * (8 * hidden + 3 * intermediate) + batch * heads * context**2 * 2
    kept = layers * tokens * hidden + per_layer if checkpointing else layers * per_layer
    return width * (kept + 3 * tokens * vocab)


def llama_estimate(o: Any, *, key: str = "train.options") -> Estimate:
    """The :class:`Estimate` of the scratch trainer's options ``o`` (a ``ScratchOptions``)."""
    intermediate = o.intermediate_size or 32 * math.ceil(o.hidden_size * 8 / 3 / 32)
    params = llama_parameters(
        o.vocab_size,
        o.hidden_size,
        o.layers,
        o.heads,
        o.kv_heads or o.heads,
        intermediate,
        o.tie_embeddings,
    )
    activations = activation_bytes(
        o.batch_size, o.context_length, o.hidden_size, intermediate, o.heads, o.layers,
        o.vocab_size,
    )  # fmt: skip
    training = 4 * _F32 * params  # weights, gradients, two AdamW moments
    weights = _F32 * params
    checkpoints = 2 * 3 * weights if o.checkpoint_every else 0  # newest + the one replacing it
    return Estimate(
        memory=training + activations + _MARGIN,
        disk=weights + checkpoints + 16 * 2**20,
        options=(
            f"{key} (vocab_size {o.vocab_size}, layers {o.layers}, hidden_size "
            f"{o.hidden_size}, batch_size {o.batch_size}, context_length {o.context_length}: "
            f"{params:,} parameters)"
        ),
        how="lower vocab_size, layers, hidden_size, batch_size or context_length",
        detail=(
            f"{format_bytes(training)} for the weights, gradients and optimizer state of "
            f"{params / 1e6:,.2f}M parameters, {format_bytes(activations)} for activations"
        ),
    )
