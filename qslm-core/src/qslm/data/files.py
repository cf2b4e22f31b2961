"""Files named by a data source's ``paths`` option, and the seeded train/validation split that
every built-in source shares."""

from __future__ import annotations

import glob
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qslm.components import Component
from qslm.errors import ConfigError


def find_files(
    component: Component, paths: Sequence[str], extensions: Sequence[str], key: str
) -> list[Path]:
    """Files, folders (their files with one of ``extensions``, recursively) and glob patterns,
    relative to the pipeline file, in order and without repeats; a path that matches nothing
    is a ConfigError naming ``key[i]``."""
    if not paths:
        raise ConfigError(f"{key}: the list is empty; name at least one file")
    found: dict[Path, None] = {}
    for i, pattern in enumerate(paths):
        where = f"{key}[{i}]"
        if not pattern.strip():  # "" would resolve to the pipeline's own folder
            raise ConfigError(f"{where}: an empty path; name a file, folder or pattern")
        full = component.resolve_path(pattern)
        if any(c in pattern for c in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(str(full), recursive=True))]
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise ConfigError(f"{where}: the pattern {pattern!r} matches no file ({full})")
        elif full.is_dir():
            matches = sorted(
                p for p in full.rglob("*") if p.is_file() and p.suffix.lower() in extensions
            )
            if not matches:
                exts = ", ".join(extensions)
                raise ConfigError(f"{where}: the folder {full} holds no {exts} file")
        elif full.is_file():
            matches = [full]
        else:
            raise ConfigError(f"{where}: no such file or folder: {full}")
        found.update(dict.fromkeys(matches))
    return list(found)


def seeded_split(
    records: list[dict[str, Any]], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, validation): a seeded shuffle picks ``round(n * fraction)`` records (at least one
    when the fraction is positive and there are two records, never all) for validation; both
    parts keep the records' original order."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_val = round(len(records) * fraction)
    if fraction > 0 and len(records) >= 2:
        n_val = min(max(n_val, 1), len(records) - 1)
    held = set(order[:n_val])
    validation = [records[i] for i in sorted(held)]
    train = [r for i, r in enumerate(records) if i not in held]
    return train, validation
