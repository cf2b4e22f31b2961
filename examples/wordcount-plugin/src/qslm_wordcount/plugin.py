"""Registers the evaluator lazily: listing plugins does not import wordcount.py."""

from qslm.api import hookimpl


@hookimpl
def qslm_register_evaluators(register):
    register(
        "wordcount", "qslm_wordcount.wordcount:WordCount", summary="Words in the validation records"
    )
