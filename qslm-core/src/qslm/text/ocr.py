"""OCR of scanned PDF pages with Tesseract (through pytesseract), only when a user asks for it.

pdfminer reads text layers only; pypdfium2 (a pdfplumber dependency, installed with the
``documents`` extra) renders each page to an image for Tesseract."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

from qslm.errors import ConfigError
from qslm.text.blocks import Block, Converted, join_lines

INSTALL = (
    "pip install 'qslm-core[ocr]' and the tesseract program (Debian: apt-get install tesseract-ocr)"
)


def check_ocr() -> None:
    """Raise a ConfigError saying what to install when OCR cannot run here."""
    try:
        import pypdfium2  # noqa: F401
        import pytesseract
    except ImportError:
        raise ConfigError(f"data.options.ocr: needs pytesseract and pypdfium2: {INSTALL}") from None
    try:
        pytesseract.get_tesseract_version()
    except Exception:  # TesseractNotFoundError and friends
        raise ConfigError(
            f"data.options.ocr: the tesseract program is not installed: {INSTALL}"
        ) from None


def ocr_pdf(
    data: bytes,
    languages: str = "eng",
    dpi: int = 300,
    progress: Callable[[int, int], None] | None = None,
) -> Converted:
    """Each page rendered at ``dpi`` and read by Tesseract; paragraphs are Tesseract's blocks
    (separated by blank lines), with their lines joined."""
    import pypdfium2
    import pytesseract

    check_ocr()
    document = pypdfium2.PdfDocument(io.BytesIO(data))
    blocks: list[Block] = []
    for number in range(1, len(document) + 1):
        image = document[number - 1].render(scale=dpi / 72).to_pil()
        text = pytesseract.image_to_string(image, lang=languages)
        for part in re.split(r"\n\s*\n", text):
            joined = join_lines(part.split("\n"))
            if joined:
                blocks.append(Block("paragraph", joined, page=number))
        if progress is not None:
            progress(number, len(document))
    return Converted(blocks, pages=len(document), converter="tesseract", notes=["OCR"])
