"""Registers the built-in evaluators."""

from qslm.hookspecs import hookimpl


@hookimpl
def qslm_register_evaluators(register):
    register(
        "perplexity",
        "qslm.evaluate.perplexity:Perplexity",
        summary="Held-out perplexity of the trained model and of its untrained reference",
    )
