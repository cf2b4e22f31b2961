"""Makes the small documents the tests read, with the tools people make them with:
python-docx (DOCX), LibreOffice headless (the PDF, from that DOCX), pypdf (the encrypted
PDF), Pillow (a scan: an image-only PDF), python-pptx (PPTX) and ebooklib (EPUB).

    python tests/core/documents/make_fixtures.py   # needs soffice on PATH; rewrites the files

The outputs are committed, so the tests need none of these tools.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
HEADER = "Field Notes on Pond Ecology"
FOOTER = "Internal draft, not for circulation"


def paragraph(n: int, topic: str) -> str:
    return (
        f"Observation {n} about {topic}: the pond keeps its water clear when reeds cover the "
        f"northern bank, and survey number {n} recorded the depth, the temperature and the "
        "number of frogs seen along the same transect at dawn."
    )


def make_docx(path: Path) -> None:
    import docx
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    document = docx.Document()
    section = document.sections[0]
    section.header.paragraphs[0].text = HEADER
    footer = section.footer.paragraphs[0]
    footer.text = FOOTER + " - page "
    field = OxmlElement("w:fldSimple")
    field.set(qn("w:instr"), "PAGE")
    run = OxmlElement("w:r")
    text = OxmlElement("w:t")
    text.text = "1"
    run.append(text)
    field.append(run)
    footer._p.append(field)
    document.add_heading("Pond Survey", level=1)
    document.add_heading("Introduction", level=2)
    document.add_paragraph(
        "Small ponds hold a surprising share of the species of a landscape, and this survey "
        "counts them through one season."
    )
    for n in range(1, 13):
        document.add_paragraph(paragraph(n, "the water"))
    document.add_heading("Methods", level=2)
    document.add_heading("Sampling", level=3)
    for n in range(13, 25):
        document.add_paragraph(paragraph(n, "sampling"))
    table = document.add_table(rows=3, cols=2)
    for r, (a, b) in enumerate([("Species", "Count"), ("Common frog", "42"), ("Newt", "7")]):
        table.cell(r, 0).text, table.cell(r, 1).text = a, b
    document.add_paragraph("The table above lists the amphibians counted in May.")
    document.save(path)


def make_pdf(docx_path: Path, pdf_path: Path) -> None:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        raise SystemExit("soffice not found: apt-get install libreoffice-writer-nogui")
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [soffice, "--headless", "--convert-to", "pdf", "--outdir", out, str(docx_path)],
            check=True,
            capture_output=True,
        )
        shutil.move(Path(out) / (docx_path.stem + ".pdf"), pdf_path)


def make_encrypted(pdf_path: Path, out: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(pdf_path))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    with out.open("wb") as f:
        writer.write(f)


def make_scan(out: Path) -> None:
    from PIL import Image, ImageDraw

    pages = []
    for n in range(2):
        image = Image.new("L", (600, 300), 255)
        ImageDraw.Draw(image).text((40, 120), f"SCANNED PAGE {n + 1}", fill=0)
        pages.append(image)
    pages[0].save(out, "PDF", resolution=72, save_all=True, append_images=pages[1:])


def make_pptx(path: Path) -> None:
    from pptx import Presentation

    deck = Presentation()
    for title, body in [
        ("Pond Survey Results", "Frogs were most common in the reed beds."),
        ("Next Steps", "Repeat the survey in autumn with the same transects."),
    ]:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(path)


def make_epub(path: Path) -> None:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("pond-survey")
    book.set_title("Pond Stories")
    book.set_language("en")
    chapters = []
    for n, (title, text) in enumerate(
        [
            ("The Heron", "The heron waited at the edge of the pond until the mist lifted."),
            ("The Newt", "A newt crossed the path after the first autumn rain."),
        ],
        1,
    ):
        chapter = epub.EpubHtml(title=title, file_name=f"chap{n}.xhtml", lang="en")
        chapter.content = f"<h1>{title}</h1><p>{text}</p>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)


def main() -> None:
    make_docx(HERE / "survey.docx")
    make_pdf(HERE / "survey.docx", HERE / "survey.pdf")
    make_encrypted(HERE / "survey.pdf", HERE / "encrypted.pdf")
    make_scan(HERE / "scanned.pdf")
    make_pptx(HERE / "slides.pptx")
    make_epub(HERE / "stories.epub")
    data = (HERE / "survey.pdf").read_bytes()
    (HERE / "truncated.pdf").write_bytes(data[: len(data) // 3])  # a download cut short
    for path in sorted(HERE.iterdir()):
        if path.suffix != ".py":
            print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
