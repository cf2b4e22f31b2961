"""Makes the Word and PDF versions of the thesis (documents/thesis.docx, documents/thesis.pdf)
with LibreOffice, as a student would have them: the chapters' Markdown becomes one HTML file,
LibreOffice Writer opens it and saves it as DOCX, then exports that DOCX as PDF.

    apt-get install libreoffice-writer-nogui      # Debian 12: soffice, no GUI
    python examples/thesis-qa/make_documents.py

The outputs are committed; finetune-pdf.toml and finetune-docx.toml read them.
"""

from __future__ import annotations

import html
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).parent


def thesis_html() -> str:
    """The chapters as HTML. The thesis uses only ATX headings and paragraphs, so a few lines
    do; headings become h1/h2, which LibreOffice maps to its Heading 1/2 styles."""
    body = []
    for chapter in sorted((HERE / "thesis").glob("*.md")):
        for block in chapter.read_text(encoding="utf-8").split("\n\n"):
            block = block.strip()
            if not block:
                continue
            level = len(block) - len(block.lstrip("#"))
            if level:
                body.append(f"<h{level}>{html.escape(block[level:].strip())}</h{level}>")
            else:
                body.append(f"<p>{html.escape(' '.join(block.split()))}</p>")
    title = "Keeping Timber Classrooms Cool Without Machines"
    return f"<html><head><meta charset='utf-8'><title>{title}</title></head><body>\n" + (
        "\n".join(body) + "\n</body></html>\n"
    )


def soffice(*args: str) -> None:
    program = shutil.which("soffice") or shutil.which("libreoffice")
    if program is None:
        raise SystemExit("soffice not found: apt-get install libreoffice-writer-nogui")
    subprocess.run([program, "--headless", *args], check=True, capture_output=True)


def main() -> None:
    out = HERE / "documents"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "thesis.html"
        source.write_text(thesis_html(), encoding="utf-8")
        # "MS Word 2007 XML" is Writer's DOCX filter; writer_pdf_Export its PDF export
        soffice("--convert-to", "docx:MS Word 2007 XML", "--outdir", work, str(source))
        soffice(
            "--convert-to",
            "pdf:writer_pdf_Export",
            "--outdir",
            work,
            str(Path(work) / "thesis.docx"),
        )
        for name in ("thesis.docx", "thesis.pdf"):
            shutil.move(Path(work) / name, out / name)
            print(f"{out / name}: {(out / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
