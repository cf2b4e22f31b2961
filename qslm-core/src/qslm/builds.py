"""Versioned build directories: ``OUTPUT/<name>/vN/``, written in a staging directory and
renamed into place only when complete."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

from qslm.errors import ConfigError, QslmError

_VERSION = re.compile(r"^v(\d+)$")
MANIFEST = "manifest.json"
STAGING_PREFIX = ".staging-"
_SECRET_KEY = re.compile(r"(token|secret|password|passwd|api[_-]?key|connection[_-]?string)", re.I)


def redact(value: Any) -> Any:
    """A copy of a config tree with values of secret-looking keys replaced."""
    if isinstance(value, dict):
        return {
            k: "***" if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    """Write JSON durably: a temporary file, fsync, then an atomic rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BuildStore:
    """The builds of one pipeline: ``root/name/v1``, ``v2``, ... A version is valid when its
    folder holds ``manifest.json``; numbers are never reused."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = Path(root)
        self.dir = self.root / name

    def versions(self) -> list[int]:
        """Numbers of the complete builds, ascending."""
        if not self.dir.is_dir():
            return []
        return sorted(
            int(m.group(1))
            for p in self.dir.iterdir()
            if (m := _VERSION.match(p.name)) and (p / MANIFEST).is_file()
        )

    def path(self, version: int) -> Path:
        return self.dir / f"v{version}"

    def create_staging(self) -> Path:
        """A new private staging folder beside the builds (same file system, so the final
        rename is atomic)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            staging = (
                self.dir / f"{STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-"
                f"{uuid.uuid4().hex[:8]}"
            )
            staging.mkdir()
            probe = staging / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"output folder {self.root} is not writable: {exc.strerror or exc}"
                " (choose another with --output)"
            ) from None
        return staging

    def _next_number(self) -> int:
        numbers = [int(m.group(1)) for p in self.dir.iterdir() if (m := _VERSION.match(p.name))]
        return max(numbers, default=0) + 1

    def publish(self, staging: Path, manifest: dict[str, Any]) -> Path:
        """Write the manifest into ``staging`` and rename it to the next free ``vN``.

        Two runs publishing at once both try the same number; the rename of the loser fails
        because the winner's folder is not empty, and it takes the next number.
        """
        for _ in range(1000):
            number = self._next_number()
            manifest["version"] = f"v{number}"
            write_json(staging / MANIFEST, manifest)
            _fsync_dir(staging)
            target = self.path(number)
            try:
                os.rename(staging, target)
            except OSError:
                if target.exists():
                    continue
                raise
            _fsync_dir(self.dir)
            return target
        raise QslmError(f"could not find a free version number in {self.dir}")

    @staticmethod
    def discard(staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)


def read_manifest(build: Path) -> dict[str, Any]:
    path = build / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{build}: not a qslm build (no {MANIFEST})") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise QslmError(f"{path}: cannot be read: {exc}") from None


def resolve_build(spec: str, output: Path) -> Path:
    """A build from a folder path or ``name@vN`` / ``name@latest`` under ``output``."""
    if "@" in spec and not Path(spec).exists():
        name, _, version = spec.partition("@")
        store = BuildStore(output, name)
        versions = store.versions()
        if not versions:
            raise ConfigError(f"{spec}: no builds of {name!r} in {output}")
        if version in ("latest", "current"):
            return store.path(versions[-1])
        m = _VERSION.match(version)
        if not m or int(m.group(1)) not in versions:
            have = ", ".join(f"v{v}" for v in versions)
            raise ConfigError(f"{spec}: no build {version!r} of {name!r} (have {have})")
        return store.path(int(m.group(1)))
    path = Path(spec)
    if not (path / MANIFEST).is_file():
        raise ConfigError(f"{spec}: not a qslm build folder (no {MANIFEST})")
    return path
