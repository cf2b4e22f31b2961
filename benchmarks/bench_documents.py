"""Document converters compared on a real corpus (a folder with a SOURCES.md listing the
sentences each file must yield): pass rate per format, headings found, seconds per page; then
pages per second and peak memory on one long PDF, each converter in its own process.

Converters: ``qslm`` (our documents source: pdfminer.six page by page for PDF, markitdown for
the rest, with our clean-up), ``markitdown`` alone, ``pypdf`` (PDF only) and ``docling``
(when installed; its PDF pipeline needs layout models from the Hugging Face hub, so offline it
is measured on the other formats only).

    python benchmarks/bench_documents.py CORPUS_DIR [--long FILE.pdf] [--only qslm,markitdown]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import platform
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from qslm.testing.documents_corpus import ALSO_KEPT, fold, read_expectations

CONVERTERS = ("qslm", "markitdown", "pypdf", "docling")


def convert(converter: str, path: Path) -> tuple[str, int, int | None]:
    """(text, headings, pages) of one file; raises whatever the converter raises."""
    if converter == "qslm":
        from qslm.text.convert import convert as ours

        done = ours(path.name, path.suffix, path.read_bytes())
        if "no text layer" in done.notes:
            raise ValueError("scanned PDF with no text layer")
        text = "\n\n".join(b.text for b in done.blocks)
        return text, sum(b.kind == "heading" for b in done.blocks), done.pages
    if converter == "markitdown":
        from markitdown import MarkItDown

        text = MarkItDown(enable_plugins=False).convert(str(path)).text_content
        return text, sum(ln.startswith("#") for ln in text.splitlines()), None
    if converter == "pypdf":
        if path.suffix.lower() != ".pdf":
            raise NotImplementedError("PDF only")
        from pypdf import PdfReader

        reader = PdfReader(path)
        pages = [page.extract_text() or "" for page in reader.pages]
        return "\n".join(pages), 0, len(pages)
    if converter == "docling":
        if path.suffix.lower() == ".pdf":
            raise NotImplementedError("needs layout models from the hub")
        from docling.document_converter import DocumentConverter

        text = DocumentConverter().convert(str(path)).document.export_to_markdown()
        return text, sum(ln.startswith("#") for ln in text.splitlines()), None
    raise ValueError(converter)


def corpus(folder: Path, converters: list[str]) -> dict[str, dict[str, list[int]]]:
    expectations = read_expectations(folder / "SOURCES.md")
    # converter -> format -> [sentences found, sentences wanted, headings, seconds, pages]
    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0] * 6))
    for name, expect in sorted(expectations.items()):
        path = folder / name
        for conv in converters:
            started = time.perf_counter()
            try:
                text, headings, pages = convert(conv, path)
                error = ""
            except NotImplementedError:
                continue
            except Exception as exc:  # a converter's failure is a result here
                text, headings, pages, error = "", 0, None, f"{type(exc).__name__}: {exc}"
            seconds = time.perf_counter() - started
            folded = fold(text)
            found = sum(s in folded for s in expect.must)
            leaked = sum(folded.count(s) > ALSO_KEPT.get(name, 0) for s in expect.must_not)
            row = table[conv][path.suffix.lower()]
            row[0] += found - leaked
            row[1] += len(expect.must) + len(expect.must_not)
            row[2] += headings
            row[3] += seconds
            if path.suffix.lower() == ".pdf" and not error:
                pages = pages or _pdf_pages(path)
            row[4] += pages or 0
            row[5] += 1
            short = (error.splitlines() or [""])[0][:70]
            print(
                f"{conv:<10} {name:<44} {found}/{len(expect.must)}"
                + (f" leaked {leaked}" if leaked else "")
                + f" h{headings} {seconds:.2f}s {short}",
                flush=True,
            )
    return table


def long_pdf(path: Path, converters: list[str]) -> None:
    """Each converter on ``path`` in a fresh process: pages/s and peak resident memory."""
    for conv in converters:
        if conv == "docling":
            continue
        here = str(Path(__file__).parent)
        code = (
            f"import sys,time,json; sys.path.insert(0, {here!r});"
            "from bench_documents import convert; from pathlib import Path;"
            f"t=time.perf_counter(); text,h,p=convert({conv!r}, Path({str(path)!r}));"
            "s=time.perf_counter()-t;"
            # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent
            "hwm=[ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0];"
            "print(json.dumps([s, p, int(hwm.split()[1])]))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if out.returncode:
            print(f"{conv}: failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        seconds, pages, rss_kb = json.loads(out.stdout.strip().splitlines()[-1])
        pages = pages or _pdf_pages(path)
        print(
            f"long PDF {path.name} ({pages} pages) {conv:<10} {pages / seconds:6.2f} pages/s "
            f"{seconds:6.1f}s  peak RSS {rss_kb / 1024:6.0f} MiB"
        )


def _pdf_pages(path: Path) -> int | None:
    from pdfminer.pdfpage import PDFPage

    try:
        with path.open("rb") as f:
            return sum(1 for _ in PDFPage.get_pages(f))
    except Exception:  # not a PDF after all (a converter read it without complaint)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--long", type=Path, default=None, help="a long PDF for pages/s")
    parser.add_argument("--only", default=",".join(CONVERTERS))
    parser.add_argument("--long-only", action="store_true", help="skip the corpus table")
    args = parser.parse_args()
    wanted = [c for c in args.only.split(",") if c in CONVERTERS]
    available = [
        c
        for c in wanted
        if c == "qslm" or importlib.util.find_spec(c if c != "pypdf" else "pypdf") is not None
    ]
    versions = {}
    from importlib import metadata

    for dist in ("markitdown", "pdfminer.six", "pypdf", "docling", "mammoth"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    print(f"python {platform.python_version()} on {platform.machine()}; {versions}")
    print(f"load average {Path('/proc/loadavg').read_text().split()[:3]}")
    table = {} if args.long_only else corpus(args.corpus, available)
    print("\nconverter  format  sentences  headings  s/page (PDF) or s/file")
    for conv, formats in table.items():
        for fmt, (found, wanted_n, headings, seconds, pages, files) in sorted(formats.items()):
            per = f"{seconds / pages:.3f} s/page" if pages else f"{seconds / files:.2f} s/file"
            print(f"{conv:<10} {fmt:<7} {found:>3}/{wanted_n:<3}     {headings:>6}  {per}")
    if args.long is not None:
        long_pdf(args.long, [c for c in available if c != "docling"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"max RSS of this process {peak} MiB")


if __name__ == "__main__":
    main()
