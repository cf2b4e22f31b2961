"""The documents source over the shared corpus of 26 real documents (``../shared/documents``
next to the clone; skipped where it is absent): the sentences SOURCES.md lists come out
(after NFC and whitespace folding), text deleted under tracked changes does not, and each bad
file gets its one-line error naming it."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest

pytest.importorskip("markitdown")

from qslm.testing.documents_corpus import ALSO_KEPT, fold, read_expectations

# CI keeps the corpus beside the clone; QSLM_SHARED_DIR points elsewhere for a local run.
SHARED = Path(
    os.environ.get("QSLM_SHARED_DIR") or Path(__file__).resolve().parents[2].parent / "shared"
)
CORPUS = SHARED / "documents"
pytestmark = pytest.mark.skipif(
    not (CORPUS / "SOURCES.md").is_file(), reason=f"no document corpus at {CORPUS}"
)

# file -> (reason, words the message must hold)
BAD = {
    "encrypted_user_password.pdf": ("encrypted", "password"),
    "scanned_medical_report_no_text_layer.pdf": ("scanned", "no text layer (3 page(s))"),
    "misleading_png_image.pdf": ("wrong content", "not a PDF file: the content is a PNG image"),
    "empty_zero_bytes.docx": ("empty", "empty file (0 bytes)"),
    "misleading_not_a_zip.odt": ("unsupported", "OpenDocument text is not supported"),
    "odt_table_rich_cells_lists.odt": ("unsupported", "OpenDocument text is not supported"),
    "rtf_czech_wikipedia_cp1250.rtf": ("unsupported", "RTF is not supported"),
    "rtf_japanese_shiftjis.rtf": ("unsupported", "RTF is not supported"),
}
# Only the pages the sentences are on: the whole paper takes 20 s to convert on CI's CPU.
PAGES = {"paper_mqlib_maxcut_qubo.pdf": {1, 28}}


def _convert(name: str) -> tuple[str, str, str]:
    """("ok", text, "") or ("error", reason, message), in a worker process."""
    from qslm.data.documents import DocumentsOptions, DocumentsSource
    from qslm.text.blocks import DocumentError
    from qslm.text.pdf import pdf_blocks

    path = CORPUS / name
    options = DocumentsOptions(paths=[str(CORPUS)], cache=False)
    source = DocumentsSource(options, base_dir=CORPUS)
    try:
        if name in PAGES:
            blocks = pdf_blocks(path.read_bytes(), name, only=PAGES[name]).blocks
        else:
            blocks = source.convert_file(path, path.read_bytes(), None)[0].blocks
    except DocumentError as exc:
        return "error", exc.reason, str(exc)
    return "ok", "\n".join(b.text for b in blocks), ""


@pytest.fixture(scope="module")
def converted() -> dict[str, tuple[str, str, str]]:
    names = sorted(read_expectations(CORPUS / "SOURCES.md"))
    # CI has two cores. "spawn": a forked child of this pytest process (which has run servers
    # and torch threads by now) can deadlock on a lock a vanished thread held at the fork.
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        return dict(zip(names, pool.map(_convert, names), strict=True))


def _names(bad: bool) -> list[str]:
    if not (CORPUS / "SOURCES.md").is_file():
        return []
    return sorted(n for n in read_expectations(CORPUS / "SOURCES.md") if (n in BAD) == bad)


@pytest.mark.parametrize("name", _names(bad=False))
def test_sentences_come_out(name: str, converted: dict) -> None:
    kind, text, message = converted[name]
    assert kind == "ok", message
    expect = read_expectations(CORPUS / "SOURCES.md")[name]
    folded = fold(text)
    missing = [s for s in expect.must if s not in folded]
    assert not missing, f"{name}: not found: {missing}"
    for deleted in expect.must_not:
        assert folded.count(deleted) == ALSO_KEPT.get(name, 0), f"{name}: deleted text leaked"


@pytest.mark.parametrize("name", _names(bad=True))
def test_bad_files_get_one_clear_line(name: str, converted: dict) -> None:
    kind, reason, message = converted[name]
    assert kind == "error", f"{name} was read; expected {BAD[name][0]}"
    assert (reason, message.splitlines()) == (BAD[name][0], [message])
    assert message.startswith(f"{name}: ") and BAD[name][1] in message


def test_the_scan_reads_with_ocr_when_asked(tmp_path):
    pytest.importorskip("pytesseract")
    import shutil

    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is not installed")
    from qslm.data.documents import DocumentsOptions, DocumentsSource

    name = "scanned_medical_report_no_text_layer.pdf"
    options = DocumentsOptions(paths=[name], ocr=True, cache_dir=str(tmp_path))
    converted, _ = DocumentsSource(options, base_dir=CORPUS).convert_file(
        CORPUS / name, (CORPUS / name).read_bytes(), None
    )
    folded = fold(" ".join(b.text for b in converted.blocks))
    wanted = read_expectations(CORPUS / "SOURCES.md")[name].other  # the strings in the image
    assert wanted and all(s in folded for s in wanted)
    assert {b.page for b in converted.blocks} == {1, 2, 3}
