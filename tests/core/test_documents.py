"""The ``documents`` data source on small files made by real tools (see
``documents/make_fixtures.py``): each format, each bad-file case with its message, the cache,
provenance, and ``qslm data``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("markitdown")

from qslm.context import RunContext
from qslm.data.documents import DocumentsOptions, DocumentsSource
from qslm.errors import ConfigError
from qslm.text.blocks import join_lines, resolve_soft_breaks

FIXTURES = Path(__file__).parent / "documents"
GOOD = ["survey.docx", "slides.pptx", "stories.epub"]  # survey.pdf: the same text as the DOCX
HTML = """<html><head><title>Ponds</title></head><body>
<nav><a href="/">Home</a> Recent posts</nav>
<main><h1>Pond Life</h1><p>Dragonflies lay their eggs on floating leaves.</p>
<table><tr><th>Insect</th><th>Month</th></tr><tr><td>Dragonfly</td><td>June</td></tr></table>
</main><footer>Copyright the pond club</footer></body></html>"""


def _ctx(tmp_path: Path, messages: list[str] | None = None) -> RunContext:
    progress = messages.append if messages is not None else (lambda m: None)
    return RunContext(config=None, registry=None, build_dir=tmp_path, seed=0, progress=progress)


def _folder(tmp_path: Path, names: list[str], html: bool = True) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(FIXTURES / name, docs / name)
    if html:
        (docs / "ponds.html").write_text(HTML, encoding="utf-8")
    return docs


_SHARED_CACHE: list[Path] = []


@pytest.fixture(autouse=True)
def _one_cache(tmp_path_factory):
    """One conversion cache for the module: each fixture file is converted once."""
    if not _SHARED_CACHE:
        _SHARED_CACHE.append(tmp_path_factory.mktemp("documents-cache"))


def _source(tmp_path: Path, **options) -> DocumentsSource:
    options.setdefault("paths", ["docs"])
    options.setdefault("cache_dir", str(_SHARED_CACHE[0]))
    return DocumentsSource(DocumentsOptions(**options), base_dir=tmp_path)


def _all(data) -> list[dict]:
    return data.train + data.validation


def test_each_format_reads_as_prose_with_provenance(tmp_path):
    _folder(tmp_path, GOOD)
    data = _source(tmp_path, validation_fraction=0.0).load(_ctx(tmp_path))
    by_file: dict[str, list[dict]] = {}
    for record in _all(data):
        by_file.setdefault(record["source"]["file"], []).append(record)
    assert sorted(by_file) == sorted(f"docs/{n}" for n in [*GOOD, "ponds.html"])
    observation = next(
        r["text"] for r in by_file["docs/survey.docx"] if r["text"].startswith("Observation 20 ")
    )
    docx = {r["text"]: r["source"] for r in by_file["docs/survey.docx"]}
    assert docx[observation]["section"] == "Pond Survey > Methods > Sampling"
    assert "| Species | Count |\n| Common frog | 42 |\n| Newt | 7 |" in docx
    slides = {r["text"]: r["source"] for r in by_file["docs/slides.pptx"]}
    assert slides["Repeat the survey in autumn with the same transects."] == {
        "file": "docs/slides.pptx",
        "page": 2,
        "section": "Next Steps",
    }
    epub = {r["text"]: r["source"] for r in by_file["docs/stories.epub"]}
    newt = epub["A newt crossed the path after the first autumn rain."]
    assert newt["section"] == "The Newt"
    assert not any("Language: en" in t for t in epub)  # markitdown's metadata header
    html = [r["text"] for r in by_file["docs/ponds.html"]]
    assert html == [
        "Dragonflies lay their eggs on floating leaves.",
        "| Insect | Month |\n| Dragonfly | June |",
    ]
    assert data.info["files_read"] == 4 and data.info["files_skipped"] == 0


def test_pdf_without_running_heads_page_numbers_or_line_breaks(tmp_path):
    _folder(tmp_path, ["survey.pdf"], html=False)
    data = _source(tmp_path, validation_fraction=0.0).load(_ctx(tmp_path))
    pdf = {r["text"]: r["source"] for r in _all(data)}
    text = " ".join(pdf)
    # LibreOffice printed the header, and the footer with "page N", on each of the 3 pages
    assert "Field Notes on Pond Ecology" not in text and "Internal draft" not in text
    observation = next(t for t in pdf if t.startswith("Observation 20 "))
    assert observation.endswith("transect at dawn.") and "\n" not in observation
    assert pdf[observation]["section"] == "Pond Survey > Methods > Sampling"
    assert pdf[observation]["page"] >= 2
    assert data.info["files"][0]["pages"] == 3


def test_instructions_take_topics_from_headings_and_keep_sources(tmp_path):
    _folder(tmp_path, ["survey.pdf"], html=False)
    source = _source(tmp_path, mode="instructions", context=0, tables="drop")
    records = _all(source.load(_ctx(tmp_path)))
    topics = {r["instruction"] for r in records}
    assert topics == {"Explain Introduction.", "Explain Sampling."}
    first = next(r for r in records if r["output"].startswith("Small ponds"))
    assert first["source"] == {
        "file": "docs/survey.pdf",
        "page": 1,
        "section": "Pond Survey > Introduction",
    }


def test_tables_can_be_dropped(tmp_path):
    _folder(tmp_path, ["survey.docx"], html=False)
    records = _all(_source(tmp_path, tables="drop").load(_ctx(tmp_path)))
    assert not any("|" in r["text"] for r in records)
    assert any(r["text"].startswith("The table above") for r in records)


def test_cache_by_content_hash(tmp_path):
    _folder(tmp_path, ["survey.pdf"], html=False)
    messages: list[str] = []
    first = _source(tmp_path, cache_dir=str(tmp_path / "cache")).load(_ctx(tmp_path, messages))
    assert not first.info["files"][0]["cached"]
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    second = _source(tmp_path, cache_dir=str(tmp_path / "cache")).load(_ctx(tmp_path, messages))
    assert second.info["files"][0]["cached"] and "(cached)" in messages[-1]
    assert second.sha256 == first.sha256 and _all(second) == _all(first)
    # the data hash is the converted text's: a rename of the cache does not change it, an
    # edit of the text does
    off = _source(tmp_path, cache=False).load(_ctx(tmp_path))
    assert off.sha256 == first.sha256 and not off.info["files"][0]["cached"]


BAD_FILES = {
    "encrypted.pdf": (
        lambda: (FIXTURES / "encrypted.pdf").read_bytes(),
        "encrypted PDF: a password is needed",
    ),
    "truncated.pdf": (
        lambda: (FIXTURES / "truncated.pdf").read_bytes(),
        "corrupt or truncated PDF",
    ),
    "scanned.pdf": (
        lambda: (FIXTURES / "scanned.pdf").read_bytes(),
        "scanned PDF with no text layer (2 page(s)); set data.options.ocr = true",
    ),
    "empty.docx": (lambda: b"", "empty file (0 bytes)"),
    "picture.pdf": (
        lambda: (FIXTURES / "stories.epub").read_bytes(),
        "not a PDF file: the content is a zip archive",
    ),
    "notes.docx": (lambda: b"plain words", "not a DOCX file: the content is text"),
    "book.epub": (
        lambda: (FIXTURES / "survey.docx").read_bytes(),
        "not a .epub file: a zip archive without META-INF/",
    ),
    "old.rtf": (lambda: b"{\\rtf1 hello}", "RTF is not supported by markitdown"),
    "table.csv": (lambda: b"a,b\n1,2\n", "extension '.csv' is not in data.options.extensions"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_each_bad_file_fails_with_one_line_naming_it(tmp_path, name):
    make, message = BAD_FILES[name]
    docs = _folder(tmp_path, [], html=True)
    (docs / name).write_bytes(make())
    with pytest.raises(ConfigError) as failure:
        _source(tmp_path).load(_ctx(tmp_path))
    lines = str(failure.value).splitlines()
    assert lines[0].startswith(f"docs/{name}: ") and message in lines[0]
    assert lines[1].startswith("1 of 2 file(s) cannot be read; set data.options.on_error")


def test_bad_files_fail_at_preflight_or_are_skipped_and_counted(tmp_path):
    docs = _folder(tmp_path, ["survey.docx", "encrypted.pdf"], html=False)
    (docs / "empty.pptx").write_bytes(b"")
    (docs / ".DS_Store").write_bytes(b"\0\1")  # hidden files are not documents
    with pytest.raises(ConfigError, match=r"docs/empty.pptx: empty file"):
        _source(tmp_path).plan()  # qslm validate / run: before any conversion or training
    messages: list[str] = []
    data = _source(tmp_path, on_error="skip").load(_ctx(tmp_path, messages))
    assert data.info["files_read"] == 1 and data.info["files_skipped"] == 2
    assert {(s["path"], s["reason"]) for s in data.info["skipped"]} == {
        ("docs/encrypted.pdf", "encrypted"),
        ("docs/empty.pptx", "empty"),
    }
    assert any("docs/encrypted.pdf: encrypted PDF" in m for m in messages)


def test_pdf_without_the_extra_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    _folder(tmp_path, ["survey.pdf"], html=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "pdfminer" else real(n, *a)
    )
    with pytest.raises(
        ConfigError,
        match=r"PDF files needs the 'documents' extra: pip install 'qslm-core\[documents\]'",
    ):
        _source(tmp_path).plan()


def test_join_lines_dehyphenates_and_keeps_real_hyphens():
    assert join_lines(["retrieval can be imple-", "mented with dense", "vectors."]) == (
        "retrieval can be implemented with dense vectors."
    )
    assert join_lines(["the Lucene-", "BM25 system"]) == "the Lucene-BM25 system"
    assert join_lines(["古書店で処刑", "記録見つかる"]) == "古書店で処刑記録見つかる"
    # a PDF decides by the rest of the document: "dual-encoder" written whole elsewhere
    broken = join_lines(["a dual-", "encoder is imple-", "mented"], mark=True)
    assert resolve_soft_breaks([broken, "the dual-encoder"])[0] == "a dual-encoder is implemented"


def test_ocr_reads_a_scan_when_asked(tmp_path):
    pytest.importorskip("pytesseract")
    pytest.importorskip("pypdfium2")
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is not installed")
    _folder(tmp_path, ["scanned.pdf"], html=False)
    records = _all(_source(tmp_path, ocr=True, validation_fraction=0.0).load(_ctx(tmp_path)))
    assert [(r["text"], r["source"]["page"]) for r in records] == [
        ("SCANNED PAGE 1", 1),
        ("SCANNED PAGE 2", 2),
    ]


def test_qslm_data_writes_records_with_split_and_provenance(tmp_path, qslm_cmd):
    _folder(tmp_path, ["slides.pptx"], html=True)
    (tmp_path / "p.toml").write_text(
        '[pipeline]\nname = "d"\n[data]\nsource = "documents"\n[data.options]\n'
        f'paths = ["docs"]\nvalidation_fraction = 0.3\ncache_dir = "{tmp_path / "cache"}"\n'
        '[train]\ntrainer = "scratch"\n'
    )
    out = tmp_path / "records.jsonl"
    done = subprocess.run(
        [*qslm_cmd, "data", "p.toml", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train", "validation"}
    assert all(r["source"]["file"].startswith("docs/") for r in rows)
    assert "[2/2] docs/slides.pptx: 2 paragraph(s)" in done.stderr
    summary = subprocess.run(
        [*qslm_cmd, "data", "p.toml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert summary.returncode == 0 and "docs/slides.pptx: 2 record(s)" in summary.stdout
    assert "(cached)" in summary.stderr
    (tmp_path / "docs" / "broken.pdf").write_bytes(b"%PDF-1.4\n")
    bad = subprocess.run(
        [*qslm_cmd, "data", "p.toml", "--out", str(tmp_path / "x.jsonl")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "docs/broken.pdf: corrupt or truncated PDF" in bad.stderr
    assert not (tmp_path / "x.jsonl").exists()
    assert sys.executable  # the subprocess ran this environment's qslm


def test_thesis_example_from_pdf_and_docx_has_the_markdown_topics(tmp_path):
    from qslm.config import load_pipeline
    from qslm.plugins import get_registry

    example = Path(__file__).resolve().parents[2] / "examples" / "thesis-qa"
    registry = get_registry()

    def records(pipeline: str, *overrides: str) -> list[dict]:
        config = load_pipeline(example / pipeline, registry, overrides=list(overrides))
        return _all(config.data.create().load(_ctx(tmp_path)))

    markdown = records("finetune.toml")
    cache = f'data.options.cache_dir="{_SHARED_CACHE[0]}"'
    for variant in ("thesis.pdf", "thesis.docx"):
        path = f'data.options.paths=["documents/{variant}"]'
        converted = records("finetune-pdf.toml", path, cache)
        assert [r["instruction"] for r in converted] == [r["instruction"] for r in markdown]
        pairs = list(zip(markdown, converted, strict=True))
        same = sum(m["output"] == c["output"] for m, c in pairs)
        # the one difference allowed: "build-ups" broken at a line end reads "buildups"
        assert all(m["output"].replace("-", "") == c["output"].replace("-", "") for m, c in pairs)
        assert same >= len(pairs) - 1, variant
        assert converted[0]["source"]["file"] == f"documents/{variant}"


def test_select_lists_the_sources_of_the_records_it_keeps(tmp_path, qslm_cmd):
    _folder(tmp_path, ["survey.docx"], html=False)
    (tmp_path / "p.toml").write_text(
        '[pipeline]\nname = "d"\n[data]\nsource = "documents"\n[data.options]\n'
        f'paths = ["docs"]\ncache_dir = "{_SHARED_CACHE[0]}"\n[train]\ntrainer = "scratch"\n'
        '[select]\nsize = 5\nsolver = "tabu"\n[select.options]\nsimilarity = "tfidf"\n'
    )
    from qslm.config import load_pipeline
    from qslm.plugins import get_registry
    from qslm.stages.select import run_select_stage

    config = load_pipeline(tmp_path / "p.toml", get_registry())
    ctx = _ctx(tmp_path)
    data = config.data.create().load(ctx)
    kept = run_select_stage(ctx, config.select, data)
    saved = json.loads((tmp_path / "select.json").read_text())
    assert saved["selected_sources"] == [r["source"] for r in kept.train]
    assert all(
        s["file"] == "docs/survey.docx" and "section" in s for s in saved["selected_sources"]
    )
    out = tmp_path / "records.jsonl"
    done = subprocess.run(
        [*qslm_cmd, "data", "p.toml", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(r.get("selected", False) for r in rows if r["split"] == "train") == 5
