"""The expectations of a document test corpus, read from its ``SOURCES.md``: for each file,
the sentences it must yield and the text that must not appear (deleted under tracked changes).

Used by the corpus test and ``benchmarks/bench_documents.py``, so both judge a converter by
the same strings. Strings marked as boilerplate or optional, or readable only in an image
(OCR) or with a password, are not required of a plain conversion.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

_SECTION = re.compile(r"^### (\S+)")
_QUOTED = re.compile(r"\"([^\"]+)\"")
# "Must not appear" strings the document also holds as ordinary text, and how often: in
# manual_blogcfc_track_changes.docx, word/document.xml has the sentence once inside <w:del>
# and once in a later paragraph, so a converter that accepts the changes keeps one copy.
ALSO_KEPT = {"manual_blogcfc_track_changes.docx": 1}
_NOT_REQUIRED = ("boilerplate", "optional", "image only", "with password", "visible in the image")


@dataclass
class Expectation:
    file: str
    must: list[str] = field(default_factory=list)
    must_not: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # boilerplate, OCR-only, password-only


def fold(text: str) -> str:
    """NFC and every run of whitespace as one space: how SOURCES.md says to compare."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def read_expectations(sources_md: Path) -> dict[str, Expectation]:
    """``file name -> Expectation`` for every ``### name`` section of ``SOURCES.md``."""
    out: dict[str, Expectation] = {}
    current: Expectation | None = None
    in_text, head = False, ""
    for line in sources_md.read_text(encoding="utf-8").splitlines():
        section = _SECTION.match(line)
        if section:
            current = out.setdefault(section.group(1), Expectation(section.group(1)))
            in_text = False
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped.startswith("- Text"):
            in_text = True
            head, _, rest = stripped.partition(":")
            _add(current, rest, head)
        elif in_text and line.startswith("  - "):
            _add(current, stripped, head)
        elif stripped.startswith("- ") or stripped.startswith("#"):
            in_text = False
    return out


def _add(expect: Expectation, text: str, head: str) -> None:
    strings = [fold(s) for s in _QUOTED.findall(text)]
    note = (head + " " + text.split('"')[0]).lower()
    if "must not appear" in note:
        expect.must_not += strings
    elif any(word in note for word in _NOT_REQUIRED):
        expect.other += strings
    else:
        expect.must += strings
