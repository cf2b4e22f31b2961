"""The ``jsonl`` data source: JSON Lines files of alpaca-style instruction records
(``instruction``/``input``/``output``), chat records (``messages``) or ``text`` records."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from qslm.components import Dataset, DataSource, Options
from qslm.data.files import find_files, seeded_split
from qslm.data.records import check_columns, kind_of, make_record
from qslm.errors import ConfigError

if TYPE_CHECKING:
    from qslm.context import RunContext


class JsonlOptions(Options):
    """Options of the ``jsonl`` data source."""

    paths: list[str] = Field(
        description="JSON Lines files, folders or glob patterns, relative to the pipeline file."
    )
    extensions: list[str] = Field(
        default=[".jsonl"], description="File endings read when a path is a folder."
    )
    format: Literal["auto", "alpaca", "chat", "text"] = Field(
        default="auto",
        description='What each line is: "alpaca" (instruction, input, output), "chat" '
        '(messages), "text", or "auto" (decided per line by its fields).',
    )
    columns: dict[str, str] = Field(
        default={},
        description='Field names of your data for ours, e.g. {instruction = "question", '
        'output = "answer"}.',
    )
    validation_fraction: float = Field(
        default=0.1, ge=0.0, lt=1.0, description="Share of records held out for evaluation."
    )
    validation_paths: list[str] = Field(
        default=[],
        description="Files held out for evaluation instead of a split of paths "
        "(validation_fraction is then not used).",
    )


class JsonlSource(DataSource):
    """Reads JSON Lines; every line is checked (``data.jsonl:17: missing "output"``) before any
    training. Exact duplicate records are dropped; the train/validation split is seeded."""

    Options = JsonlOptions
    options: JsonlOptions

    def _files(self) -> tuple[list[Path], list[Path]]:
        o = self.options
        train = find_files(self, o.paths, o.extensions, "data.options.paths")
        held = (
            find_files(self, o.validation_paths, o.extensions, "data.options.validation_paths")
            if o.validation_paths
            else []
        )
        return train, held

    def _where(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.base_dir))
        except ValueError:
            return str(path)

    def read(self, path: Path, digest: Any = None) -> list[dict[str, Any]]:
        """The records of one file, each line checked; blank lines are skipped."""
        raw = path.read_bytes()
        if digest is not None:
            digest.update(str(path.name).encode() + b"\0" + raw + b"\0")
        where = self._where(path)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start})") from None
        records = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{where}:{n}: not valid JSON ({exc.msg}, column {exc.colno})"
                ) from None
            records.append(
                make_record(value, f"{where}:{n}", self.options.format, self.options.columns)
            )
        return records

    def plan(self) -> list[str]:
        check_columns(self.options.columns, "data.options.columns")
        train, held = self._files()
        counts: Counter[str] = Counter()
        total = 0
        for path in [*train, *held]:
            records = self.read(path)
            counts.update(kind_of(r) for r in records)
            total += len(records)
        if not total:
            raise ConfigError(f"data.options.paths: the {len(train)} file(s) hold no record")
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        line = f"{len(train) + len(held)} file(s), {total} record(s) ({kinds})"
        return [line + (f"; {len(held)} validation file(s)" if held else "")]

    def load(self, ctx: RunContext) -> Dataset:
        check_columns(self.options.columns, "data.options.columns")
        train_files, held_files = self._files()
        digest = hashlib.sha256()
        file_info = []

        def gather(files: list[Path], seen: dict[str, dict[str, Any]]) -> int:
            duplicates = 0
            for path in files:
                records = self.read(path, digest)
                file_info.append({"path": str(path), "records": len(records)})
                for r in records:
                    key = json.dumps(r, sort_keys=True)
                    duplicates += key in seen
                    seen.setdefault(key, r)
            return duplicates

        seen: dict[str, dict[str, Any]] = {}
        duplicates = gather(train_files, seen)
        if not seen:
            raise ConfigError(f"data.options.paths: the {len(train_files)} file(s) hold no record")
        if held_files:
            held: dict[str, dict[str, Any]] = {}
            duplicates += gather(held_files, held)
            leaked = [k for k in held if k in seen]
            train = [r for k, r in seen.items() if k not in held]
            validation = list(held.values())
            # a record in both would make held-out numbers measure memorisation: train loses it
            info_split = {
                "validation_files": len(held_files),
                "train_records_also_in_validation_dropped": len(leaked),
            }
        else:
            train, validation = seeded_split(
                list(seen.values()), self.options.validation_fraction, ctx.seed
            )
            info_split = {}
        everything = [*train, *validation]
        return Dataset(
            train=train,
            validation=validation,
            sha256=digest.hexdigest(),
            info={
                "files": file_info,
                "records": len(everything),
                "kinds": dict(Counter(kind_of(r) for r in everything)),
                "duplicates_dropped": duplicates,
                "characters": sum(len(r["text"]) for r in everything),
                **info_split,
            },
        )
