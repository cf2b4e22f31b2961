"""What this machine has: available memory and free disk, and the checks against them.

Used before anything large is allocated or written (a trainer's model, a QUBO's matrices, a
build), so that a size that cannot fit is refused with the numbers instead of ending in an
allocator abort, and a full disk during a run is reported as such.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from qslm.errors import QslmError

FORCE_ENV = "QSLM_FORCE"
"""Set (to 1) by ``qslm validate/run --force``: skip the memory and disk checks."""


class ResourceError(QslmError):
    """Not enough memory or disk for what was asked (exit code 2: it is the options that ask
    for too much; ``--force`` overrides on a machine the estimate misjudges)."""

    exit_code = 2


def forced() -> bool:
    """Whether ``--force`` (or ``QSLM_FORCE=1``) switched the resource checks off."""
    return os.environ.get(FORCE_ENV, "").lower() not in ("", "0", "false", "no")


def format_bytes(n: float) -> str:
    """``1.5 GiB``-style sizes for messages."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _cgroup_memory_left() -> int | None:
    # In a container the cgroup limit, not the host's free memory, is what the kernel enforces.
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)


def available_memory() -> int:
    """Bytes of memory a new allocation can use now (psutil's ``available``, capped by a
    cgroup limit); psutil comes with accelerate, a core dependency."""
    try:
        import psutil

        free = int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is always there with accelerate
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    left = _cgroup_memory_left()
    return min(free, left) if left is not None else free


def free_disk(path: Path) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def check_memory(needed: int, what: str, how: str = "") -> None:
    """Refuse ``needed`` bytes when the machine has less available; ``what`` names the request
    (the options or the file), ``how`` says what to change."""
    if forced():
        return
    have = available_memory()
    if needed > have:
        raise ResourceError(
            f"{what} needs about {format_bytes(needed)} of memory and this machine has "
            f"{format_bytes(have)} available{'; ' + how if how else ''} "
            "(--force or QSLM_FORCE=1 to try anyway)"
        )


def check_disk(needed: int, where: Path, what: str) -> None:
    """Refuse to start writing ``needed`` bytes under ``where`` when its disk has less free."""
    if forced():
        return
    have = free_disk(where)
    if needed > have:
        raise ResourceError(
            f"{what} needs about {format_bytes(needed)} of disk in {where} and it has "
            f"{format_bytes(have)} free; free some space or choose another --output "
            "(--force or QSLM_FORCE=1 to try anyway)"
        )


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is a full disk or quota: an
    ``OSError`` with ENOSPC/EDQUOT, or a library's own error carrying the OS message
    (safetensors raises ``SafetensorError: ... No space left on device``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(current) or "Disk quota exceeded" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


@dataclass(frozen=True)
class Estimate:
    """What a component will need: peak memory and disk for its output, in bytes, with the
    options they come from (named in a refusal) and what to change to need less."""

    memory: int
    disk: int
    options: str
    how: str = ""
    detail: str = ""


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))  # respects taskset and container CPU sets
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def torch_threads(option: int | None = None) -> int:
    """The intra-op thread count for training: the component's ``threads`` option, else
    ``OMP_NUM_THREADS`` as the user (or torchrun, which sets it to 1 per rank when several
    share a machine) exported it, else every usable CPU.

    Honouring ``OMP_NUM_THREADS`` matters: two trainings of two threads each on two cores
    ran 40-60x slower than one (OpenMP threads spin waiting for a preempted partner)."""
    if option:
        return option
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return usable_cpus()
