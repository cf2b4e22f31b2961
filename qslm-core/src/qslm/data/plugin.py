"""Registers the built-in data sources."""

from qslm.hookspecs import hookimpl


@hookimpl
def qslm_register_data_sources(register):
    register(
        "text",
        "qslm.data.text:TextSource",
        summary="Text and Markdown files: cleaned, de-duplicated paragraphs, seeded split",
    )
