"""Registers the built-in attention backends."""

from qslm.hookspecs import hookimpl


@hookimpl
def qslm_register_attention_backends(register):
    register(
        "exact",
        "qslm.attention.exact:ExactAttention",
        summary="Exact attention with PyTorch scaled-dot-product attention",
    )
    register(
        "sampled",
        "qslm.attention.sampled:SampledAttention",
        summary="Attention estimated from samples of each row's softmax, optionally noisy",
    )
    register(
        "mps",
        "qslm.attention.mps:MpsAttention",
        summary="Shots from each row's amplitudes held as a bond-truncated matrix product state",
    )
