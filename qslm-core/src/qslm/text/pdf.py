"""PDF to blocks with pdfminer.six (markitdown's own PDF engine), page by page.

We call pdfminer directly rather than through markitdown because markitdown returns one string
for the whole file: page numbers (provenance), font sizes (headings) and the position of each
text box (running headers and footers) are lost there, and a page that fails takes the whole
file with it. pdfminer's layout analysis (LAParams) already orders text boxes across columns.
"""

from __future__ import annotations

import io
import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from qslm.text.blocks import (
    Block,
    Converted,
    DocumentError,
    continues,
    fix_ligatures,
    join_lines,
    resolve_soft_breaks,
)

BAND = 0.135  # share of the page height at the top and bottom where running heads sit
_DIGITS = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(
    r"^(page\s*)?([#ivxlcdm]+|#)(\s*(of|/)\s*#)?$|^[-–—]\s*#\s*[-–—]$", re.IGNORECASE
)
_NUMBERED = re.compile(r"^(\d+(\.\d+)*)\.?\s+\S")
_END = re.compile(r"[.,;:]$")
# TeX sets an accent as a spacing glyph before its letter ("Barab´asi"); pdfminer keeps it
# there. As a combining mark after the letter, NFC makes the accented letter ("Barabási").
_SPACING_ACCENTS = {
    "´": "\u0301",
    "`": "\u0300",
    "¨": "\u0308",
    "ˆ": "\u0302",
    "˜": "\u0303",
    "ˇ": "\u030c",
    "˘": "\u0306",
    "˝": "\u030b",
    "˚": "\u030a",
    "¸": "\u0327",
}
_ACCENT_BEFORE = re.compile(f"([{''.join(_SPACING_ACCENTS)}])([^\\W\\d_])")
_CID = re.compile(r"\(cid:\d+\)")
_SECTION_NUMBER = re.compile(r"^\d+(\.\d+)*\.?$")
# Bold faces by name: "Bold", TeX's CMBX, Times clones' "Medi", "Semibold", "Black", "Heavy".
_BOLD = re.compile(r"bold|cmbx|cmb\d|medi|semi|demi|heavy|black|[-,]bd", re.IGNORECASE)


@dataclass
class _Box:
    lines: list[str]
    size: float
    bold: bool
    top: float  # 0 at the top of the page, 1 at the bottom
    bottom: float
    page: int


def pdf_blocks(
    data: bytes,
    name: str,
    progress: Callable[[int, int], None] | None = None,
    only: Collection[int] | None = None,
) -> Converted:
    """The blocks of a PDF. Raises :class:`DocumentError` for an encrypted or unreadable file;
    a page that fails is skipped and noted. ``progress(done, total)`` is called per page;
    ``only`` (page numbers from 1) reads just those pages."""
    from pdfminer.pdfdocument import PDFPasswordIncorrect

    try:
        document, pages = _open(data)
    except PDFPasswordIncorrect:
        raise DocumentError(
            name, "encrypted PDF: a password is needed to open it", "encrypted"
        ) from None
    except Exception as exc:  # pdfminer raises many unrelated types for a damaged file
        raise DocumentError(
            name, f"corrupt or truncated PDF ({type(exc).__name__}: {exc})", "corrupt"
        ) from None
    boxes, notes, images = _read_pages(pages, progress, only)
    converted = Converted([], pages=len(pages), converter="pdfminer.six", notes=notes)
    text_chars = sum(len("".join(b.lines)) for b in boxes)
    if text_chars < 20 * max(1, len(pages)) and images:
        converted.notes.append("no text layer")
        return converted  # the caller reports a scan (and may OCR it)
    boxes = _drop_running_heads(boxes, len(pages))
    converted.blocks = _to_blocks(boxes, _outline_titles(document))
    return converted


def _open(data: bytes) -> tuple[Any, list[Any]]:
    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdfpage import PDFPage
    from pdfminer.pdfparser import PDFParser

    document = PDFDocument(PDFParser(io.BytesIO(data)))
    return document, list(PDFPage.create_pages(document))


def _read_pages(
    pages: list[Any], progress: Callable[[int, int], None] | None, only: Collection[int] | None
) -> tuple[list[_Box], list[str], int]:
    from pdfminer.converter import PDFPageAggregator
    from pdfminer.layout import LAParams
    from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager

    manager = PDFResourceManager()
    device = PDFPageAggregator(manager, laparams=LAParams())
    interpreter = PDFPageInterpreter(manager, device)
    boxes: list[_Box] = []
    notes: list[str] = []
    images = 0
    for number, page in enumerate(pages, 1):
        if only is not None and number not in only:
            continue
        try:
            interpreter.process_page(page)
            layout = device.get_result()
        except Exception as exc:  # one damaged page must not lose the others
            notes.append(f"page {number} skipped: {type(exc).__name__}: {exc}")
            continue
        page_boxes, page_images = _page_boxes(layout, number)
        boxes += page_boxes
        images += page_images
        if progress is not None:
            progress(number, len(pages))
    return boxes, notes, images


def _page_boxes(layout: Any, number: int) -> tuple[list[_Box], int]:
    from pdfminer.layout import LTFigure, LTImage, LTTextBox, LTTextLine

    height = max(layout.height, 1.0)
    out: list[_Box] = []
    images = 0
    for item in layout:
        if isinstance(item, (LTFigure, LTImage)):
            images += 1
        if not isinstance(item, LTTextBox):
            continue
        lines = [ln for ln in item if isinstance(ln, LTTextLine) and ln.get_text().strip()]
        # Rotated margin stamps (arXiv's side line) arrive as one character per line.
        short = sum(len(ln.get_text().strip()) <= 2 for ln in lines)
        if not lines or (len(lines) > 3 and short > len(lines) / 2):
            continue
        # pdfminer puts a heading and the paragraph under it in one box when they sit close;
        # a change of type size or weight between lines starts a box of its own.
        runs: list[tuple[tuple[float, bool], list[Any]]] = []
        for line in lines:
            style = _style(line)
            if runs and runs[-1][0] == style:
                runs[-1][1].append(line)
            else:
                runs.append((style, [line]))
        for (size, bold), run in runs:
            texts = [_glyphs(ln.get_text().strip()) for ln in run]
            top = 1 - max(ln.y1 for ln in run) / height
            bottom = 1 - min(ln.y0 for ln in run) / height
            out.append(_Box(texts, size, bold, top, bottom, number))
    return out, images


def _glyphs(text: str) -> str:
    text = _CID.sub("", text)  # pdfminer's "(cid:48)": a glyph with no Unicode mapping
    text = _ACCENT_BEFORE.sub(lambda m: m.group(2) + _SPACING_ACCENTS[m.group(1)], text)
    return unicodedata.normalize("NFC", fix_ligatures(text))


def _style(line: Any) -> tuple[float, bool]:
    """(median type size, bold) of one line; a line that starts with a bold run-in heading
    ("Training. We ...") is not bold."""
    from pdfminer.layout import LTChar

    chars = [c for c in line if isinstance(c, LTChar) and not c.get_text().isspace()]
    if not chars:
        return 0.0, False
    size = round(statistics.median(c.size for c in chars), 1)
    return size, sum(bool(_BOLD.search(c.fontname)) for c in chars) >= 0.9 * len(chars)


def _drop_running_heads(boxes: list[_Box], pages: int) -> list[_Box]:
    """Drop page numbers and the lines repeated at the top or bottom of many pages.

    pdfminer has no notion of running heads. A box in the top or bottom band whose text, with
    its numbers masked, recurs on at least half the pages (three at least) is a header or
    footer; a lone page number in those bands goes too."""

    def key(box: _Box) -> str:
        return _DIGITS.sub("#", " ".join(box.lines).lower()).strip()

    def in_band(box: _Box) -> bool:
        return box.bottom <= BAND or box.top >= 1 - BAND

    seen = {(key(b), b.top < 0.5, b.page) for b in boxes if in_band(b)}
    pages_with = Counter((k, top) for k, top, _ in seen)
    threshold = max(3, pages // 2) if pages >= 3 else pages + 1
    kept = []
    for box in boxes:
        if in_band(box):
            k = key(box)
            if _PAGE_NUMBER.match(k) or pages_with[(k, box.top < 0.5)] >= threshold:
                continue
        kept.append(box)
    return kept


def _outline_titles(document: Any) -> dict[str, int]:
    """Bookmark titles (normalised) -> level, when the PDF has an outline (LaTeX with hyperref,
    LibreOffice and Word exports do): the surest sign of a heading."""
    titles: dict[str, int] = {}
    try:
        for level, title, *_ in document.get_outlines():
            titles.setdefault(_norm(fix_ligatures(str(title))), level)
    except Exception:  # no outline, or a damaged one: fall back to font sizes
        return {}
    return titles


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text).strip().lower()


def _to_blocks(boxes: list[_Box], outline: dict[str, int]) -> list[Block]:
    sizes = Counter()
    for b in boxes:
        sizes[b.size] += sum(len(ln) for ln in b.lines)
    body = sizes.most_common(1)[0][0] if sizes else 0.0
    larger = sorted({b.size for b in boxes if b.size >= body * 1.15}, reverse=True)
    blocks: list[Block] = []
    number = ""  # a section number set in a box of its own ("1" then "Introduction")
    for box in boxes:
        text = join_lines(box.lines, mark=True)
        if box.bold and _SECTION_NUMBER.match(text):
            number = text
            continue
        if number:
            text, number = f"{number} {text}", ""
        if not any(ch.isalpha() for ch in text):
            # Boxes without a letter are table cells, axis ticks and equation numbers: a
            # jumble of figures once they leave their table, so no training text.
            continue
        level = _heading_level(box, text, body, larger, outline)
        if level:
            blocks.append(Block("heading", text, level=level, page=box.page))
        elif blocks and blocks[-1].kind == "paragraph" and continues(blocks[-1].text, text):
            blocks[-1].text = join_lines([blocks[-1].text, text], mark=True)
        else:
            blocks.append(Block("paragraph", text, page=box.page))
    for block, text in zip(blocks, resolve_soft_breaks([b.text for b in blocks]), strict=True):
        block.text = text
    return blocks


def _heading_level(
    box: _Box, text: str, body: float, larger: list[float], outline: dict[str, int]
) -> int:
    """A heading's level (1 = top), or 0 for body text. Outline titles first; else a short
    line without a sentence end set larger than the body text, or a numbered bold one."""
    if len(box.lines) > 3 or len(text) > 120:
        return 0
    stripped = _norm(_NUMBERED.sub(lambda m: m.group(0)[len(m.group(1)) :], text))
    if outline:
        level = outline.get(_norm(text)) or outline.get(stripped)
        if level:
            # Outlines often leave the title or chapter headings out (LibreOffice's starts at
            # Heading 2), so the type size ranks the levels where it can.
            return larger.index(box.size) + 1 if box.size in larger else level + len(larger)
    if _END.search(text) or not any(ch.isalpha() for ch in text):
        return 0
    if box.size in larger:
        return larger.index(box.size) + 1
    numbered = _NUMBERED.match(text)
    if (
        box.bold
        and len(box.lines) <= 2
        and len(text) <= 80
        and (text[0].isupper() or text[0].isdigit())
    ):
        depth = numbered.group(1).rstrip(".").count(".") + 1 if numbered else 1
        return depth + len(larger)
    return 0
