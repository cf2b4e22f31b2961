"""Markdown (markitdown's output, or a user's .md file) to blocks: ATX headings, paragraphs,
tables as Markdown rows, slide numbers as pages; links, images and emphasis marks removed.

markitdown writes Markdown for a reader; a model learning prose wants the words alone, so the
markup that is not structure goes here.
"""

from __future__ import annotations

import re

from qslm.text.blocks import Block, fix_ligatures, join_lines

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SLIDE = re.compile(r"^<!--\s*Slide number:\s*(\d+)\s*-->$")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\((?:[^()]|\([^)]*\))*\)")
_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1|(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?!\w)")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~<])")
_BULLET = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+")
_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


def inline_text(text: str) -> str:
    """Words of one Markdown line: images dropped, links reduced to their text, emphasis and
    backslash escapes removed."""
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _EMPHASIS.sub(lambda m: m.group(2) or m.group(3), text)
    return fix_ligatures(_ESCAPE.sub(r"\1", text)).strip()


def markdown_blocks(markdown: str) -> list[Block]:
    """Blocks of a Markdown text, in order. A list item is a paragraph of its own; a table is
    one block with one ``| a | b |`` line per row (the ``|---|`` rule dropped)."""
    blocks: list[Block] = []
    lines: list[str] = []
    table: list[str] = []
    page: int | None = None
    fence = False

    def flush() -> None:
        if lines:
            text = join_lines(lines)
            if text:
                blocks.append(Block("paragraph", text, page=page))
            lines.clear()
        if table:
            blocks.append(Block("table", "\n".join(table), page=page))
            table.clear()

    for raw in markdown.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        slide = _SLIDE.match(line)
        if slide:
            flush()
            page = int(slide.group(1))
            continue
        if line.startswith("```"):
            flush()
            fence = not fence
            continue
        if fence:
            lines.append(line)
            continue
        line = _COMMENT.sub("", line).strip()
        heading = _HEADING.match(line)
        if heading:
            flush()
            text = inline_text(heading.group(2))
            if text:
                blocks.append(Block("heading", text, level=len(heading.group(1)), page=page))
        elif line.startswith("|") and line.endswith("|"):
            if lines:
                flush()
            row = _table_row(line)
            if not _TABLE_RULE.match(line) and row.strip("| "):  # markitdown's empty header
                table.append(row)
        elif not line:
            flush()
        elif _BULLET.match(raw):
            flush()
            lines.append(inline_text(_BULLET.sub("", raw)))
        else:
            if table:
                flush()
            lines.append(inline_text(line))
    flush()
    return [b for b in blocks if b.kind != "table" or b.text.strip("| \n")]


def _table_row(line: str) -> str:
    cells = [inline_text(c) for c in line.strip("|").split("|")]
    return "| " + " | ".join(cells) + " |"
