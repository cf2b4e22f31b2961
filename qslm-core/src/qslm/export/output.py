"""The export's output folder: written under a temporary name beside it and renamed into place
only when complete, so a failed export (a full disk, a converter error) never leaves a
half-written file under the final name."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qslm.errors import ConfigError, QslmError

MANIFEST = "export.json"


def check_target(out: Path, force: bool) -> None:
    """Refuse an existing output folder unless ``force``; refuse a file in its place always."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    if out.exists() and not force:
        raise ConfigError(f"--out {out}: the folder exists; pass --force to replace it")


@contextmanager
def staged(out: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it becomes ``out`` (replacing the old
    one only then, with ``force``), on any failure it is removed and ``out`` is left as it was."""
    check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        _replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise QslmError(
                f"export to {out} failed: no space left on device; nothing was written there"
            ) from None
        raise QslmError(f"export to {out} failed: {exc}; nothing was written there") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():  # --force: move the old export aside first, drop it once the new is in
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_manifest(folder: Path, data: dict[str, Any]) -> None:
    """``export.json``: where the export came from and how it was made."""
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    (folder / MANIFEST).write_text(json.dumps({**data, "files": files}, indent=2) + "\n")
