"""The ``documents`` data source: PDF, DOCX, PPTX, XLSX, HTML, EPUB (and .md/.txt) files ->
paragraphs, or instruction records whose topics are the documents' headings, each record
carrying its provenance (``source``: file, page, section path).

Conversion is :mod:`qslm.text` (pdfminer.six and markitdown, the ``documents`` extra), cached
by content hash. Records are made as in the ``text`` source (same options, same modes); a
file that cannot be read fails the run before training (``on_error = "fail"``) or is skipped
and counted (``"skip"``).
"""

from __future__ import annotations

import glob
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from qslm.components import Dataset
from qslm.data.files import seeded_split
from qslm.data.text import TextOptions, TextSource, clean_text
from qslm.errors import ConfigError
from qslm.text.blocks import Block, Converted, DocumentError
from qslm.text.convert import (
    MARKITDOWN,
    PLAIN,
    SUPPORTED,
    UNSUPPORTED,
    check_content,
    convert,
    require_extra,
)

if TYPE_CHECKING:
    from qslm.context import RunContext


class DocumentsOptions(TextOptions):
    """Options of the ``documents`` data source (those of ``text``, and these)."""

    extensions: list[str] = Field(
        default=list(SUPPORTED),
        description="File endings read in a folder; a file in a folder with another ending is "
        "a bad file (see on_error). Hidden files (.name) are ignored.",
    )
    on_error: Literal["fail", "skip"] = Field(
        default="fail",
        description="A file that cannot be read (encrypted, corrupt, empty, not what its name "
        'says, unsupported, a scan without OCR): "fail" stops before training, naming every '
        'such file; "skip" leaves it out and counts it in the manifest.',
    )
    tables: Literal["markdown", "drop"] = Field(
        default="markdown",
        description='Tables: "markdown" keeps each as one record of "| a | b |" rows; "drop".',
    )
    ocr: bool = Field(
        default=False,
        description="Read scanned PDFs (no text layer) with Tesseract (the 'ocr' extra and the "
        "tesseract program); off, a scan is a bad file.",
    )
    ocr_languages: str = Field(default="eng", description="Tesseract languages, e.g. 'eng+deu'.")
    cache: bool = Field(default=True, description="Keep converted text by content hash.")
    cache_dir: str = Field(
        default="",
        description="Folder of the conversion cache; empty: $XDG_CACHE_HOME/qslm/documents "
        "(~/.cache/qslm/documents).",
    )


class DocumentsSource(TextSource):
    """Reads documents of many formats; records as in ``text``, plus ``source`` provenance."""

    Options = DocumentsOptions
    options: DocumentsOptions

    def files(self) -> list[Path]:
        """Files, folders (every file in them, recursively, but hidden ones) and glob patterns,
        relative to the pipeline file, without repeats; a path matching nothing is an error."""
        if not self.options.paths:
            raise ConfigError("data.options.paths: the list is empty; name at least one file")
        found: dict[Path, None] = {}
        for i, pattern in enumerate(self.options.paths):
            full = self.resolve_path(pattern)
            if any(c in pattern for c in "*?["):
                matches = [Path(m) for m in sorted(glob.glob(str(full), recursive=True))]
                matches = [m for m in matches if m.is_file()]
            elif full.is_dir():
                matches = sorted(
                    p
                    for p in full.rglob("*")
                    if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(full).parts)
                )
            elif full.is_file():
                matches = [full]
            else:
                raise ConfigError(f"data.options.paths[{i}]: no such file or folder: {full}")
            if not matches:
                raise ConfigError(f"data.options.paths[{i}]: {pattern!r} matches no file ({full})")
            found.update(dict.fromkeys(matches))
        return list(found)

    def plan(self) -> list[str]:
        """Pre-flight: the extra is installed, every file's content matches its name (cheap:
        no conversion); with on_error "fail" a bad file stops here, before any training."""
        lines = super().plan()
        bad = []
        for path in self.files():
            try:
                self._check(path, path.read_bytes())
            except DocumentError as exc:
                bad.append(exc)
        kinds = sorted({p.suffix.lower() for p in self.files()})
        if ".pdf" in kinds:
            require_extra("pdfminer", "PDF")
        office = [k for k in kinds if k in MARKITDOWN]
        if office:
            require_extra("markitdown", office[0].lstrip(".").upper())
        if self.options.ocr:
            from qslm.text.ocr import check_ocr

            check_ocr()
        if bad and self.options.on_error == "fail":
            raise _failure(bad, len(self.files()))
        lines.append(
            f"documents: {', '.join(kinds)}" + (f"; {len(bad)} bad file(s) skipped" if bad else "")
        )
        return lines

    def check_readable(self, path: Path) -> None:
        # Only plain-text files must be UTF-8; the other formats are checked by _check below.
        if path.suffix.lower() in PLAIN:
            super().check_readable(path)

    def _check(self, path: Path, data: bytes) -> None:
        suffix = path.suffix.lower()
        known = [e.lower() for e in self.options.extensions]
        if suffix not in known and suffix not in UNSUPPORTED:
            raise DocumentError(
                self._name(path),
                f"extension {suffix or '(none)'!r} is not in data.options.extensions",
                "unsupported",
            )
        check_content(self._name(path), suffix, data)

    def _name(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.base_dir))
        except ValueError:
            return str(path)

    def convert_file(
        self, path: Path, data: bytes, ctx: RunContext | None
    ) -> tuple[Converted, bool]:
        """The file's blocks (from the cache when it has them) and whether they were cached."""
        from qslm.text.cache import cache_folder, cached

        name = self._name(path)
        self._check(path, data)
        folder = cache_folder(self.options.cache_dir) if self.options.cache else None

        def report(done: int, total: int) -> None:
            if ctx is not None and total >= 20 and (done % 10 == 0 or done == total):
                ctx.progress(f"    {name}: page {done}/{total}")

        converted, hit = cached(data, folder, lambda: convert(name, path.suffix, data, report))
        if "no text layer" in converted.notes:
            if not self.options.ocr:
                raise DocumentError(
                    name,
                    f"scanned PDF with no text layer ({converted.pages} page(s)); set "
                    "data.options.ocr = true to read it with Tesseract",
                    "scanned",
                )
            from qslm.text.ocr import ocr_pdf

            variant = f"-ocr-{self.options.ocr_languages}"
            converted, hit = cached(
                data,
                folder,
                lambda: ocr_pdf(data, self.options.ocr_languages, progress=report),
                variant,
            )
        return converted, hit

    def load(self, ctx: RunContext) -> Dataset:
        files = self.files()
        documents: list[tuple[Path, list[tuple[str, str, dict[str, Any]]]]] = []
        read, bad = [], []
        digest = hashlib.sha256()
        for n, path in enumerate(files, 1):
            data = path.read_bytes()
            try:
                converted, hit = self.convert_file(path, data, ctx)
            except DocumentError as exc:
                bad.append(exc)
                ctx.progress(f"  [{n}/{len(files)}] {exc}")
                continue
            units = self._units(path, converted.blocks)
            digest.update(self._name(path).encode() + b"\0")
            digest.update(json.dumps([u[:2] for u in units], ensure_ascii=False).encode() + b"\0")
            documents.append((path, units))
            pages = f"{converted.pages} page(s), " if converted.pages else ""
            ctx.progress(
                f"  [{n}/{len(files)}] {self._name(path)}: {pages}{len(units)} paragraph(s)"
                + (" (cached)" if hit else "")
            )
            read.append(
                {
                    "path": self._name(path),
                    "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "converter": converted.converter,
                    "pages": converted.pages,
                    "paragraphs": len(units),
                    "cached": hit,
                    **({"notes": converted.notes} if converted.notes else {}),
                }
            )
        if bad and self.options.on_error == "fail":
            raise _failure(bad, len(files))
        records, duplicates, extra = self._records(documents)
        if not records:
            raise ConfigError(
                f"data.options.paths: no text found in the {len(read)} file(s) read "
                f"({len(bad)} skipped; no paragraph of {self.options.min_chars}+ characters)"
            )
        train, validation = seeded_split(records, self.options.validation_fraction, ctx.seed)
        skipped = [{"path": e.file, "reason": e.reason, "message": e.detail} for e in bad]
        return Dataset(
            train=train,
            validation=validation,
            sha256=digest.hexdigest(),
            info={
                "files": read,
                "files_read": len(read),
                "files_skipped": len(skipped),
                "skipped": skipped,
                "records": len(records),
                "duplicates_dropped": duplicates,
                "characters": sum(len(r["text"]) for r in records),
                **extra,
            },
        )

    def _units(self, path: Path, blocks: list[Block]) -> list[tuple[str, str, dict[str, Any]]]:
        """``(topic, text, source)`` per paragraph or table: the topic is the deepest heading in
        force, the source the file, page and section path."""
        stack: list[tuple[int, str]] = []
        units = []
        for block in blocks:
            text = clean_text(block.text).strip()
            if block.kind == "heading":
                stack = [(lvl, h) for lvl, h in stack if lvl < block.level] + [(block.level, text)]
                continue
            if block.kind == "table" and self.options.tables == "drop":
                continue
            if block.kind == "paragraph":
                text = " ".join(text.split("\n"))
            if len(text) < self.options.min_chars:
                continue
            source: dict[str, Any] = {"file": self._name(path)}
            if block.page is not None:
                source["page"] = block.page
            if stack:
                source["section"] = " > ".join(h for _, h in stack)
            units.append((stack[-1][1] if stack else "", text, source))
        return units

    def _records(self, documents: list[tuple[Path, list[tuple[str, str, dict[str, Any]]]]]):
        if self.options.mode == "instructions":
            plain = [(p, [(h, t) for h, t, _ in units]) for p, units in documents]
            records, duplicates, extra = self._instructions(plain)
            # _instructions keeps the first of equal outputs, so the first source is the one
            sources: dict[str, dict[str, Any]] = {}
            for _, units in documents:
                for _, text, source in units:
                    sources.setdefault(text, source)
            for record in records:
                record["source"] = sources[record["output"]]
            return records, duplicates, extra
        seen: dict[str, dict[str, Any]] = {}
        total = 0
        for _, units in documents:
            for _, text, source in units:
                total += 1
                seen.setdefault(text, source)
        return [{"text": t, "source": s} for t, s in seen.items()], total - len(seen), {}


def _failure(bad: list[DocumentError], total: int) -> ConfigError:
    lines = [str(e) for e in bad]
    lines.append(
        f'{len(bad)} of {total} file(s) cannot be read; set data.options.on_error = "skip" to '
        "train on the others"
    )
    return ConfigError("\n".join(lines))
