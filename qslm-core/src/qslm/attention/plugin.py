"""Registers the built-in attention backends."""

from qslm.hookspecs import hookimpl


@hookimpl
def qslm_register_attention_backends(register):
    register(
        "exact",
        "qslm.attention.exact:ExactAttention",
        summary="Exact attention with PyTorch scaled-dot-product attention",
    )
