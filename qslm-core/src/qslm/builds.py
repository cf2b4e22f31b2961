"""Versioned build directories: ``OUTPUT/<name>/vN/``, written in a staging directory and
renamed into place only when complete."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
import shutil
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from qslm.errors import ConfigError, QslmError
from qslm.secrets import strip_credentials

_VERSION = re.compile(r"^v(\d+)$")
MANIFEST = "manifest.json"
STAGING_PREFIX = ".staging-"
RUN_STATE = "run.json"  # in a staging folder: what run owns it (``qslm run --resume`` reads it)
RUN_LOCK = ".run.lock"  # in a staging folder: flock-ed by the process working in it
CURRENT = "CURRENT"  # in a pipeline's folder: the promoted version (``qslm builds promote``)
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
    if isinstance(value, str) and "://" in value:
        return strip_credentials(value)  # a tracking URI's user:password@ or ?token=
    return value


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as null: a bare NaN is not JSON, and other readers
    (JavaScript, jq, MLflow's REST API) refuse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    """Write JSON durably (NaN as null): a temporary file, fsync, then an atomic rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(json_safe(data), f, indent=2, sort_keys=False, default=str, allow_nan=False)
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

    def current(self) -> int | None:
        """The promoted version, or None when none was promoted (or it no longer exists)."""
        try:
            m = _VERSION.match((self.dir / CURRENT).read_text(encoding="utf-8").strip())
        except OSError:
            return None
        if m and int(m.group(1)) in self.versions():
            return int(m.group(1))
        return None

    def current_or_latest(self) -> int | None:
        """What ``name@current`` means: the promoted version, else the newest build."""
        versions = self.versions()
        return self.current() or (versions[-1] if versions else None)

    def promote(self, version: int) -> None:
        """Make ``version`` the current build: the ``CURRENT`` file is replaced atomically, so
        readers see the old or the new pointer, never a half-written one."""
        if version not in self.versions():
            have = ", ".join(f"v{v}" for v in self.versions()) or "none"
            raise ConfigError(f"{self.dir.name}: no build v{version} to promote (have {have})")
        tmp = self.dir / f".{CURRENT}.{os.getpid()}.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            f.write(f"v{version}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / CURRENT)
        _fsync_dir(self.dir)

    def stagings(self) -> list[Path]:
        """Staging folders of runs in progress or interrupted, newest first."""
        if not self.dir.is_dir():
            return []
        found = [p for p in self.dir.iterdir() if p.name.startswith(STAGING_PREFIX) and p.is_dir()]
        return sorted(found, key=lambda p: _run_started(p), reverse=True)


def _run_started(staging: Path) -> float:
    state = read_run_state(staging)
    if state and isinstance(state.get("started_unix"), int | float):
        return float(state["started_unix"])
    return staging.stat().st_mtime


def config_sha256(raw: dict[str, Any]) -> str:
    """A digest of a resolved pipeline configuration (after ``--set`` overrides)."""
    text = json.dumps(raw, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def write_run_state(staging: Path, *, name: str, pipeline: Path, raw: dict[str, Any]) -> None:
    """Record in ``staging`` which run owns it: the resolved config (secrets redacted; the
    digest is of the real values), pid, host and start time."""
    now = dt.datetime.now(dt.UTC)
    write_json(
        staging / RUN_STATE,
        {
            "qslm_run": 1,
            "name": name,
            "pipeline_file": str(pipeline),
            "config_sha256": config_sha256(raw),
            "config": redact(raw),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": now.isoformat(timespec="seconds"),
            "started_unix": now.timestamp(),
        },
    )


def read_run_state(staging: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((staging / RUN_STATE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return state if isinstance(state, dict) else None


def lock_staging(staging: Path) -> IO[bytes] | None:
    """Take the staging folder's lock without waiting; the open lock file, or None when another
    process holds it. The kernel drops the lock when its holder dies, even by SIGKILL, so a
    held lock means a live owner (a run, or a resume of it)."""
    import fcntl

    f = (staging / RUN_LOCK).open("a+b")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


@dataclass
class Interrupted:
    """A staging folder left by a run that can no longer finish by itself."""

    path: Path
    state: dict[str, Any] | None  # None: the run died before writing run.json
    lock: IO[bytes]


def staging_status(staging: Path) -> str:
    """``running`` (a live process holds its lock), ``interrupted`` (resumable),
    ``other-host`` or ``unknown`` (no run.json: a run killed at its very start, or an older
    qslm)."""
    state = read_run_state(staging)
    if state is not None and state.get("host") != socket.gethostname():
        return "other-host"
    lock = lock_staging(staging)
    if lock is None:
        return "running"
    lock.close()
    return "unknown" if state is None else "interrupted"


def claim_interrupted(store: BuildStore, raw: dict[str, Any]) -> Interrupted:
    """The newest interrupted staging folder of ``store`` whose configuration is ``raw``,
    locked for this process.

    Only folders of this host count (a pid means nothing elsewhere) whose lock is free (their
    owner is dead). :class:`ConfigError` when there is nothing to resume or every interrupted
    run had another configuration (the message says which keys differ).
    """
    want = config_sha256(raw)
    mismatched: list[tuple[Path, dict[str, Any]]] = []
    busy = 0
    host = socket.gethostname()
    for staging in store.stagings():
        state = read_run_state(staging)
        if state is None or state.get("host") != host:
            continue
        lock = lock_staging(staging)
        if lock is None:
            busy += 1
            continue
        state = read_run_state(staging)  # again, under the lock: a publishing run removes it
        if state is None:
            lock.close()
            continue
        if state.get("config_sha256") == want:
            return Interrupted(staging, state, lock)
        lock.close()
        mismatched.append((staging, state))
    where = store.dir
    if mismatched:
        staging, state = mismatched[0]
        diff = config_diff(state.get("config") or {}, redact(raw))
        lines = [f"  {key}: {_show(old)} -> {_show(new)}" for key, old, new in diff[:20]]
        if not diff:
            lines = ["  (a redacted secret value differs)"]
        raise ConfigError(
            f"cannot resume {store.dir.name!r}: the interrupted run in {staging.name} (started "
            f"{state.get('started', '?')}) had another configuration; what differs "
            "(interrupted -> now):\n" + "\n".join(lines) + "\nRun with the same pipeline "
            "file and --set options, or without --resume to start a new build."
        )
    extra = f" ({busy} run(s) still in progress)" if busy else ""
    raise ConfigError(
        f"nothing to resume: no interrupted run of {store.dir.name!r} in {where}{extra}; "
        "run without --resume to start a new build"
    )


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(absent)"
    return json.dumps(value, default=str)


_MISSING = object()


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config/metrics tree as dotted keys (``train.options.max_steps``)."""
    if isinstance(tree, dict):  # an empty table has no keys, so no entry
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree}


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Dotted keys whose values differ: ``(key, old, new)``; an absent side is ``_MISSING``."""
    a, b = flatten(old), flatten(new)
    return [
        (key, a.get(key, _MISSING), b.get(key, _MISSING))
        for key in sorted(a.keys() | b.keys())
        if a.get(key, _MISSING) != b.get(key, _MISSING)
    ]


def read_manifest(build: Path) -> dict[str, Any]:
    path = build / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{build}: not a qslm build (no {MANIFEST})") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise QslmError(f"{path}: cannot be read: {exc}") from None


def resolve_build(spec: str, output: Path) -> Path:
    """A build from a folder path, ``name@vN`` / ``name@latest`` / ``name@current``, or a bare
    ``vN`` / ``current`` / ``latest`` when ``output`` holds the builds of one pipeline only."""
    path = Path(spec)
    if (path / MANIFEST).is_file():
        return path
    name, at, version = spec.rpartition("@")
    if not at:
        if not (_VERSION.match(spec) or spec in ("latest", "current")):
            raise ConfigError(
                f"{spec}: not a qslm build folder (no {MANIFEST}); name a build as a folder, "
                "NAME@vN, NAME@current or NAME@latest"
            )
        names = pipeline_names(output)
        if len(names) != 1:
            have = ", ".join(names) or "none"
            raise ConfigError(
                f"{spec}: say which pipeline, as NAME@{spec}: {output} holds builds of "
                f"{len(names)} pipelines ({have})"
            )
        name, version = names[0], spec
    store = BuildStore(output, name)
    versions = store.versions()
    if not versions:
        raise ConfigError(f"{name}@{version}: no builds of {name!r} in {output}")
    if version == "latest":
        return store.path(versions[-1])
    if version == "current":
        return store.path(store.current_or_latest())  # type: ignore[arg-type]
    m = _VERSION.match(version)
    if not m or int(m.group(1)) not in versions:
        have = ", ".join(f"v{v}" for v in versions)
        raise ConfigError(f"{name}@{version}: no build {version!r} of {name!r} (have {have})")
    return store.path(int(m.group(1)))


def pipeline_names(output: Path) -> list[str]:
    """Names of the pipelines with at least one build (or staging folder) under ``output``."""
    if not output.is_dir():
        return []
    return sorted(
        p.name
        for p in output.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and any(_VERSION.match(c.name) or c.name.startswith(STAGING_PREFIX) for c in p.iterdir())
    )


def listing_target(where: str | None, output: str | None) -> tuple[Path, str | None]:
    """What ``qslm builds list [WHERE] [--output OUTPUT]`` lists: (output folder, pipeline name
    or None for all). WHERE is an output folder (relative or absolute), a pipeline's own
    folder of builds, or a pipeline name in ``--output`` (default ``./builds``)."""
    if where is None or output is not None:
        return Path(output or "builds"), where
    given = Path(where)
    if given.is_dir() and (given.is_absolute() or not (Path("builds") / where).is_dir()):
        if not pipeline_names(given) and BuildStore(given.parent, given.name).versions():
            return given.absolute().parent, given.absolute().name  # builds/NAME itself
        return given, None
    return Path("builds"), where
