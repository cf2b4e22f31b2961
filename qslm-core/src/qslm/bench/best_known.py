"""Best-known values for benchmark instances, from ``--best-known FILE`` (JSON ``{"sense":
"max", "values": {"bqp50_1": 2098}}`` or a plain ``{"name": value}`` object, or a Markdown file)
or, without it, from a ``README.md`` next to the instances.

In Markdown, a table whose header cells after the first are integers is read as ``<row
name>_<column>`` (``| bqp50 | 2098 | ...`` under ``| set | 1 | ...`` gives ``bqp50_1``); any
other table as ``| name | value |``. A heading above the table that says "maximum" or
"minimum" declares the sense.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qslm.errors import ConfigError


@dataclass
class BestKnown:
    values: dict[str, float] = field(default_factory=dict)
    sense: str | None = None
    source: str = ""


def parse_markdown_best_known(text: str) -> tuple[dict[str, float], str | None]:
    """Best-known values and declared sense from Markdown tables (see the module docstring)."""
    values: dict[str, float] = {}
    sense: str | None = None
    heading = ""
    lines = text.splitlines()
    k = 0
    while k < len(lines):
        line = lines[k].strip()
        if line.startswith("#"):
            heading = line.lower()
        if not line.startswith("|"):
            k += 1
            continue
        table = []
        while k < len(lines) and lines[k].strip().startswith("|"):
            table.append([c.strip() for c in lines[k].strip().strip("|").split("|")])
            k += 1
        if len(table) < 3 or not all(set(c) <= set("-: ") for c in table[1]):
            continue
        header, rows = table[0], table[2:]
        numbered = len(header) > 2 and all(re.fullmatch(r"\d+", h) for h in header[1:])
        found = False
        for row in rows:
            if numbered:
                pairs = [(f"{row[0]}_{h}", v) for h, v in zip(header[1:], row[1:], strict=False)]
            else:
                pairs = [(row[0], row[1])] if len(row) >= 2 else []
            for key, value in pairs:
                try:
                    values[key.strip("`")] = float(value.replace(",", ""))
                    found = True
                except ValueError:
                    pass
        if found and sense is None:
            if "max" in heading:
                sense = "max"
            elif "min" in heading:
                sense = "min"
    return values, sense


def load_best_known(instances: Sequence[Path], path: Path | None = None) -> BestKnown:
    """Best-known values for ``instances`` from ``path``, else from README.md files next to
    them (an absent README gives no values)."""
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--best-known {path}: cannot be read: {exc}") from None
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{path}: line {exc.lineno}: JSON syntax error: {exc.msg}"
                ) from None
            sense = data.get("sense") if isinstance(data, dict) else None
            raw = data.get("values", data) if isinstance(data, dict) else None
            if not isinstance(raw, dict) or sense not in (None, "min", "max"):
                raise ConfigError(
                    f'{path}: expected {{"sense": "max", "values": {{"instance": number}}}}'
                )
            values = {}
            for key, value in raw.items():
                if key == "sense":
                    continue
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise ConfigError(f"{path}: values.{key}: expected a number, got {value!r}")
                values[key] = float(value)
            return BestKnown(values, sense, str(path))
        values, sense = parse_markdown_best_known(text)
        return BestKnown(values, sense, str(path))
    best = BestKnown()
    for folder in sorted({p.parent for p in instances}):
        readme = folder / "README.md"
        if readme.is_file():
            values, sense = parse_markdown_best_known(readme.read_text(encoding="utf-8"))
            best.values.update(values)
            best.sense = best.sense or sense
            best.source = ", ".join(filter(None, [best.source, str(readme)]))
    return best
