"""Registers the built-in evaluators."""

from qslm.hookspecs import hookimpl


@hookimpl
def qslm_register_evaluators(register):
    register(
        "perplexity",
        "qslm.evaluate.perplexity:Perplexity",
        summary="Held-out perplexity of the trained model and of its untrained reference",
    )
    register(
        "attention-error",
        "qslm.evaluate.attention_error:AttentionError",
        summary="Per-layer error of the attention backend against exact, and its perplexity cost",
    )
    register(
        "concepts",
        "qslm.evaluate.concepts:Concepts",
        summary="Concept coverage and reference similarity of generated answers to a question file",
    )
