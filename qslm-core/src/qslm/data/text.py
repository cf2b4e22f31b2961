"""The ``text`` data source: text and Markdown files -> cleaned, de-duplicated paragraphs."""

from __future__ import annotations

import glob
import hashlib
import random
import re
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from qslm.components import Dataset, DataSource, Options
from qslm.errors import ConfigError

if TYPE_CHECKING:
    from qslm.context import RunContext

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u2000-\u200b\u3000]+")
_BLANK_LINES = re.compile(r"\n\s*\n")


class TextOptions(Options):
    """Options of the ``text`` data source."""

    paths: list[str] = Field(
        description="Files, folders or glob patterns, relative to the pipeline file."
    )
    extensions: list[str] = Field(
        default=[".txt", ".md"], description="File endings read when a path is a folder."
    )
    validation_fraction: float = Field(
        default=0.1, ge=0.0, lt=1.0, description="Share of paragraphs held out for evaluation."
    )
    min_chars: int = Field(default=1, ge=1, description="Shorter paragraphs are dropped.")


def clean_text(text: str) -> str:
    """Normalise Unicode (NFC), drop control characters and collapse runs of spaces."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs are separated by blank lines; lines inside one are joined with a space."""
    return [" ".join(p.split("\n")).strip() for p in _BLANK_LINES.split(text) if p.strip()]


class TextSource(DataSource):
    """Reads ``.txt``/``.md`` files; each paragraph becomes a record ``{"text": ...}``.

    Exact duplicate paragraphs are dropped (the first is kept). The split into train and
    validation is a seeded shuffle, so the same seed and files give the same split.
    """

    Options = TextOptions
    options: TextOptions

    def files(self) -> list[Path]:
        """The files the options name, sorted; a path that matches nothing is a ConfigError."""
        found: dict[Path, None] = {}
        for i, pattern in enumerate(self.options.paths):
            key = f"data.options.paths[{i}]"
            full = self.resolve_path(pattern)
            if any(c in pattern for c in "*?["):
                matches = [Path(m) for m in sorted(glob.glob(str(full), recursive=True))]
                matches = [m for m in matches if m.is_file()]
                if not matches:
                    raise ConfigError(f"{key}: the pattern {pattern!r} matches no file ({full})")
            elif full.is_dir():
                matches = sorted(
                    p
                    for p in full.rglob("*")
                    if p.is_file() and p.suffix.lower() in self.options.extensions
                )
                if not matches:
                    exts = ", ".join(self.options.extensions)
                    raise ConfigError(f"{key}: the folder {full} holds no {exts} file")
            elif full.is_file():
                matches = [full]
            else:
                raise ConfigError(f"{key}: no such file or folder: {full}")
            found.update(dict.fromkeys(matches))
        if not self.options.paths:
            raise ConfigError("data.options.paths: the list is empty; name at least one file")
        return list(found)

    def plan(self) -> list[str]:
        files = self.files()
        size = sum(f.stat().st_size for f in files)
        if size == 0:
            raise ConfigError(f"data.options.paths: the {len(files)} file(s) named are empty")
        return [f"{len(files)} file(s), {size / 1024:.1f} KiB"]

    def load(self, ctx: RunContext) -> Dataset:
        files = self.files()
        digest = hashlib.sha256()
        seen: dict[str, None] = {}
        file_info = []
        duplicates = 0
        for path in files:
            raw = path.read_bytes()
            digest.update(str(path.name).encode() + b"\0" + raw + b"\0")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
            paragraphs = [
                p for p in split_paragraphs(clean_text(text)) if len(p) >= self.options.min_chars
            ]
            for p in paragraphs:
                if p in seen:
                    duplicates += 1
                seen.setdefault(p)
            file_info.append(
                {
                    "path": str(path),
                    "bytes": len(raw),
                    "sha256": hashlib.sha256(raw).hexdigest(),
                    "paragraphs": len(paragraphs),
                }
            )
        records = [{"text": p} for p in seen]
        if not records:
            raise ConfigError(
                f"data.options.paths: no text found in {len(files)} file(s) "
                f"(after cleaning, no paragraph of at least {self.options.min_chars} characters)"
            )
        order = list(range(len(records)))
        random.Random(ctx.seed).shuffle(order)
        n_val = round(len(records) * self.options.validation_fraction)
        if self.options.validation_fraction > 0 and len(records) >= 2:
            n_val = min(max(n_val, 1), len(records) - 1)
        validation = [records[i] for i in sorted(order[:n_val])]
        train = [records[i] for i in sorted(order[n_val:])]
        return Dataset(
            train=train,
            validation=validation,
            sha256=digest.hexdigest(),
            info={
                "files": file_info,
                "records": len(records),
                "duplicates_dropped": duplicates,
                "characters": sum(len(r["text"]) for r in records),
            },
        )
