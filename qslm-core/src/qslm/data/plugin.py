"""Registers the built-in data sources."""

from qslm.hookspecs import hookimpl


@hookimpl
def qslm_register_data_sources(register):
    register(
        "text",
        "qslm.data.text:TextSource",
        summary="Text and Markdown files: paragraphs, or instruction records with context",
    )
    register(
        "jsonl",
        "qslm.data.jsonl:JsonlSource",
        summary="JSON Lines: alpaca instruction/input/output, chat messages or text records",
    )
    register(
        "hf",
        "qslm.data.hf:HfSource",
        summary="The datasets library: local json/csv/parquet/text, save_to_disk folders, hub",
    )
    register(
        "documents",
        "qslm.data.documents:DocumentsSource",
        summary="PDF, DOCX, PPTX, HTML, EPUB: paragraphs or instruction records, with provenance",
    )
