"""Convert one document file to :class:`Converted` blocks: PDF with pdfminer.six (see
:mod:`qslm.text.pdf`), DOCX, PPTX, XLSX, HTML and EPUB with markitdown, Markdown and text as
they are. The content is checked against the extension first, so a PNG named ``.pdf`` or an
empty ``.docx`` gets one clear line instead of a converter's traceback.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable

from qslm.text.blocks import Converted, DocumentError
from qslm.text.markdown_blocks import markdown_blocks

EXTRA = "documents"
INSTALL = f"pip install 'qslm-core[{EXTRA}]'"
MARKITDOWN = (".docx", ".pptx", ".xlsx", ".html", ".htm", ".xhtml", ".epub")
PLAIN = (".txt", ".md", ".markdown")
SUPPORTED = (".pdf", *MARKITDOWN, *PLAIN)
# Formats users will have that the converters cannot read: say what to do instead.
UNSUPPORTED = {
    ".doc": "the old binary Word format is not supported; save it as .docx or PDF",
    ".ppt": "the old binary PowerPoint format is not supported; save it as .pptx or PDF",
    ".odt": "OpenDocument text is not supported by markitdown; save it as .docx or PDF",
    ".odp": "OpenDocument slides are not supported by markitdown; save them as .pptx or PDF",
    ".rtf": "RTF is not supported by markitdown (it would read the markup as text); save it "
    "as .docx or PDF",
}
_ZIP_KINDS = {".docx": "word/", ".pptx": "ppt/", ".xlsx": "xl/", ".epub": "META-INF/"}
# A handful of signatures is all the sniffing needs (magika, markitdown's own detector, is
# a model and would guess; these are certain).
_SIGNATURES = [
    (b"%PDF", "a PDF"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"{\\rtf", "an RTF document"),
    (b"\xd0\xcf\x11\xe0", "an old binary Office file (.doc/.xls/.ppt)"),
]


def what_is(data: bytes) -> str:
    """What the first bytes say the content is ("a PDF", "a PNG image", "text", ...)."""
    head = data[:1024]
    for magic, label in _SIGNATURES:
        if head.startswith(magic) or (magic == b"%PDF" and magic in head):
            return label
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError as exc:
        return "text" if exc.start > len(head) - 4 else "binary data"


def check_content(name: str, suffix: str, data: bytes) -> None:
    """Raise :class:`DocumentError` for an empty file, an extension we cannot read, or content
    that is not what the extension says."""
    if not data:
        raise DocumentError(name, "empty file (0 bytes)", "empty")
    if suffix in UNSUPPORTED:
        raise DocumentError(name, UNSUPPORTED[suffix], "unsupported")
    if suffix not in SUPPORTED:
        known = ", ".join(SUPPORTED)
        raise DocumentError(
            name, f"unsupported extension {suffix!r} (read: {known})", "unsupported"
        )
    found = what_is(data)
    expected = {".pdf": "a PDF", **dict.fromkeys(_ZIP_KINDS, "a zip archive")}.get(suffix, "text")
    if found != expected:
        kind = suffix.lstrip(".").upper()
        raise DocumentError(name, f"not a {kind} file: the content is {found}", "wrong content")
    if suffix in _ZIP_KINDS:
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile as exc:
            raise DocumentError(
                name, f"corrupt or truncated {suffix} file ({exc})", "corrupt"
            ) from None
        if not any(n.startswith(_ZIP_KINDS[suffix]) for n in names):
            raise DocumentError(
                name,
                f"not a {suffix} file: a zip archive without {_ZIP_KINDS[suffix]}",
                "wrong content",
            )


def convert(
    name: str, suffix: str, data: bytes, progress: Callable[[int, int], None] | None = None
) -> Converted:
    """The blocks of one file's bytes; ``name`` is used in messages, ``suffix`` picks the
    converter. Raises :class:`DocumentError` for a file that cannot be read."""
    suffix = suffix.lower()
    check_content(name, suffix, data)
    if suffix in PLAIN:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentError(
                name, f"not UTF-8 text (byte {exc.start})", "wrong content"
            ) from None
        return Converted(markdown_blocks(text), converter="markdown")
    if suffix == ".pdf":
        require_extra("pdfminer", "PDF")
        from qslm.text.pdf import pdf_blocks

        return pdf_blocks(data, name, progress)
    require_extra("markitdown", suffix.lstrip(".").upper())
    if suffix in (".html", ".htm", ".xhtml"):
        data = main_content(data)
    markdown = _markitdown(name, suffix, data)
    if suffix == ".epub":
        # markitdown opens an e-book with its metadata ("**Title:** ..."): not prose.
        markdown = _EPUB_METADATA.sub("", markdown)
    return Converted(markdown_blocks(markdown), converter="markitdown")


def require_extra(module: str, kind: str) -> None:
    """A ConfigError naming the extra to install when ``module`` is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        from qslm.errors import ConfigError

        raise ConfigError(f"reading {kind} files needs the {EXTRA!r} extra: {INSTALL}")


def _markitdown(name: str, suffix: str, data: bytes) -> str:
    from markitdown import MarkItDown, StreamInfo

    try:
        result = MarkItDown(enable_plugins=False).convert_stream(
            io.BytesIO(data), stream_info=StreamInfo(extension=suffix)
        )
    except Exception as exc:  # markitdown wraps every converter failure in its own types
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DocumentError(name, f"cannot convert: {detail}", "corrupt") from None
    return result.text_content or ""


_EPUB_METADATA = re.compile(
    r"^\*\*(Title|Authors?|Language|Publisher|Date|Description|Identifier):\*\*.*$", re.MULTILINE
)


def main_content(data: bytes) -> bytes:
    """The page's main content (``<main>``, else ``<article>``, else ``role="main"``) without
    navigation, sidebars and footers, as HTML; the whole page when it marks none.

    markitdown converts the whole page, menus included ("move to sidebar", "Recent posts")."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    main = soup.find("main") or soup.find("article") or soup.find(attrs={"role": "main"})
    if main is None:
        return data
    for tag in main.find_all(["nav", "aside", "footer", "script", "style", "noscript"]):
        tag.decompose()
    for tag in main.select('[role="navigation"], .mw-editsection, .vector-page-toolbar'):
        tag.decompose()
    title = soup.find("h1")
    head = "" if title is None or title in main.descendants else str(title)
    return f"<html><body>{head}{main}</body></html>".encode()
