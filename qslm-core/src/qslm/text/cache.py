"""Converted documents cached by the file's content hash, so a second run converts nothing.

The cache lives in ``$XDG_CACHE_HOME/qslm/documents`` (``~/.cache/qslm/documents`` when the
variable is unset) unless a folder is given. An entry's name holds the SHA-256 of the file's
bytes and the versions of the converters, so an edited file or an upgraded library converts
afresh; entries are written whole (a temporary file, then a rename).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from qslm.text.blocks import Converted

FORMAT = 1  # bump when our own clean-up of the converters' output changes


def cache_folder(folder: str | os.PathLike[str] | None = None) -> Path:
    """The folder given, else the user cache folder for converted documents."""
    if folder:
        return Path(folder).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qslm" / "documents"


def _versions() -> str:
    found = []
    for dist in ("pdfminer.six", "markitdown", "qslm-core"):
        try:
            found.append(metadata.version(dist))
        except metadata.PackageNotFoundError:
            found.append("-")
    return hashlib.sha256(f"{FORMAT}:{found}".encode()).hexdigest()[:12]


def cached(
    data: bytes, folder: Path | None, make: Callable[[], Converted], variant: str = ""
) -> tuple[Converted, bool]:
    """``(converted, True)`` from the cache, else ``(make(), False)`` after storing it; with
    ``folder`` None the cache is off. ``variant`` names a different reading of the same
    bytes (OCR and its languages)."""
    if folder is None:
        return make(), False
    entry = folder / f"{hashlib.sha256(data).hexdigest()}-{_versions()}{variant}.json"
    try:
        return Converted.from_json(json.loads(entry.read_text(encoding="utf-8"))), True
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent or unreadable: convert again
    converted = make()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = entry.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(converted.to_json(), ensure_ascii=False), encoding="utf-8")
        partial.replace(entry)
    except OSError:
        pass  # a read-only or full cache folder costs time, never the run
    return converted, False
