"""The converted form of a document: headings, paragraphs and tables, each with its page, and
the clean-ups every converter shares (line joining with de-hyphenation, ligatures)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from qslm.errors import ConfigError

Kind = Literal["heading", "paragraph", "table"]

# Typographic ligatures that NFC keeps (only NFKC splits them, and NFKC also rewrites
# full-width digits and other characters a Japanese or Korean text wants kept).
_LIGATURES = str.maketrans(
    {
        "\ufb00": "ff",
        "\ufb01": "fi",
        "\ufb02": "fl",
        "\ufb03": "ffi",
        "\ufb04": "ffl",
        "\ufb05": "st",
        "\ufb06": "st",
    }
)
_SOFT_HYPHEN_BREAK = re.compile(r"[^\W\d_]-$")
# Scripts written without spaces between words: a line break inside them is no space.
_NO_SPACE_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


class DocumentError(ConfigError):
    """One input file cannot be read (encrypted, corrupt, empty, not what its name says); the
    message starts with the file's name. ``reason`` is a short key counted in the manifest."""

    def __init__(self, file: str, message: str, reason: str) -> None:
        super().__init__(f"{file}: {message}")
        self.file, self.reason, self.detail = file, reason, message


@dataclass
class Block:
    """One heading (``level`` 1 = top), paragraph or table (Markdown rows, one per line)."""

    kind: Kind
    text: str
    level: int = 0
    page: int | None = None


@dataclass
class Converted:
    """A whole document: its blocks in reading order and what the converter noted."""

    blocks: list[Block]
    pages: int | None = None
    converter: str = ""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "blocks": [asdict(b) for b in self.blocks],
            "pages": self.pages,
            "converter": self.converter,
            "notes": self.notes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Converted:
        return cls(
            blocks=[Block(**b) for b in data["blocks"]],
            pages=data.get("pages"),
            converter=data.get("converter", ""),
            notes=list(data.get("notes", [])),
        )


def fix_ligatures(text: str) -> str:
    return text.translate(_LIGATURES)


SOFT_BREAK = "\u00ad"  # marks a hyphen dropped at a line break, until the document decides


def join_lines(lines: list[str], mark: bool = False) -> str:
    """Join the lines of one paragraph: a word broken with a hyphen at the end of a line and
    continued in lower case is joined without the hyphen ("imple-" + "mented"); other lines
    are joined with a space, or with nothing between characters of Chinese or Japanese.

    No converter we use does this for PDFs (pdfminer keeps the line breaks). The rule cannot
    tell "dual-" + "encoder" (a real hyphen) from a line-break hyphen; joining wins, as it
    is by far the commoner case in typeset prose; with ``mark`` the join keeps a
    :data:`SOFT_BREAK` for :func:`resolve_soft_breaks` to decide with the whole document."""
    out = ""
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if not out:
            out = line
        elif _SOFT_HYPHEN_BREAK.search(out):
            # "imple-" + "mented" loses the hyphen; "Lucene-" + "BM25" keeps it
            out = (out[:-1] + (SOFT_BREAK if mark else "") if line[0].islower() else out) + line
        elif _NO_SPACE_SCRIPT.match(out[-1]) and _NO_SPACE_SCRIPT.match(line[0]):
            out += line
        else:
            out += " " + line
    return out


def continues(previous: str, following: str) -> bool:
    """Whether ``following`` reads as the rest of ``previous``'s sentence (a paragraph split
    by a page or column break): no sentence end before it, a lower-case word after it."""
    if not previous or not following:
        return False
    if previous.rstrip()[-1] in '.!?:;)"”»。．':
        return False
    return following.lstrip()[0].islower()


_SOFT = re.compile(rf"(\w+){SOFT_BREAK}(\w+)")
_HYPHENATED = re.compile(r"\w+-\w+")


def resolve_soft_breaks(texts: list[str]) -> list[str]:
    """Each word split at a line-end hyphen: with the hyphen where the document writes the
    word with one elsewhere ("dual-encoder"), else joined ("implemented")."""
    seen = {w.lower() for t in texts for w in _HYPHENATED.findall(t.replace(SOFT_BREAK, ""))}

    def decide(m: re.Match[str]) -> str:
        joined = f"{m.group(1)}-{m.group(2)}"
        return joined if joined.lower() in seen else m.group(1) + m.group(2)

    return [_SOFT.sub(decide, t).replace(SOFT_BREAK, "") for t in texts]
