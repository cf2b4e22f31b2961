"""Where llama.cpp's HF -> GGUF converter comes from: the llama-cpp-python source distribution
on PyPI, which vendors llama.cpp (``vendor/llama.cpp``: ``convert_hf_to_gguf.py``, its
``conversion`` package and its own ``gguf-py``), at the version of the installed
llama-cpp-python, so the converter and the runtime that loads its output are one llama.cpp.

No wheel on PyPI ships this converter with its maintainers' authority: the ``gguf`` package is
only gguf-py (the writer), and the repackagings found there are stale or unofficial (see
docs/how-to/export.md). ``--llama-cpp DIR`` (or ``QSLM_LLAMA_CPP``) uses a llama.cpp checkout
instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from qslm.errors import ConfigError, QslmError

DEFAULT_VERSION = "0.3.36"  # the llama-cpp-python release this export was tested with
_NEEDED = ("convert_hf_to_gguf.py", "conversion", "gguf-py")
_KEEP = (*_NEEDED, "LICENSE")


@dataclass
class Converter:
    """A llama.cpp source folder holding the converter, and where it came from."""

    root: Path
    provenance: dict[str, Any]


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qslm" / "llama.cpp"


def _check_folder(root: Path, where: str) -> None:
    missing = [n for n in _NEEDED if not (root / n).exists()]
    if missing:
        raise ConfigError(
            f"{where} {root}: not a llama.cpp source folder (missing {', '.join(missing)})"
        )


def _gguf_py_version(root: Path) -> str | None:
    import tomllib

    try:
        return tomllib.loads((root / "gguf-py" / "pyproject.toml").read_text())["project"][
            "version"
        ]
    except (OSError, KeyError, ValueError):
        return None


def find_converter(llama_cpp: str | None, progress: Callable[[str], None]) -> Converter:
    """The converter in ``llama_cpp`` (or ``QSLM_LLAMA_CPP``), else the one vendored by the
    installed llama-cpp-python's source distribution, fetched once into the cache."""
    given = llama_cpp or os.environ.get("QSLM_LLAMA_CPP")
    if given:
        root = Path(given).expanduser().resolve()
        _check_folder(root, "--llama-cpp" if llama_cpp else "QSLM_LLAMA_CPP")
        return Converter(root, {"from": str(root), "gguf_py": _gguf_py_version(root)})
    try:
        version = metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        version = DEFAULT_VERSION
    root = _cache_root() / f"llama-cpp-python-{version}"
    if not (root / "source.json").is_file():
        fetch(version, root, progress)
    source = json.loads((root / "source.json").read_text())
    return Converter(root, {**source, "gguf_py": _gguf_py_version(root)})


def fetch(version: str, root: Path, progress: Callable[[str], None]) -> None:
    """``pip download`` the llama-cpp-python sdist and keep its vendored converter in ``root``."""
    spec = f"llama-cpp-python=={version}"
    progress(f"fetching llama.cpp's converter: pip download {spec} (source, ~77 MB, once)")
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary"]
        cmd += ["llama-cpp-python", spec, "-d", tmp, "-q"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if done.returncode != 0 or not sdists:
            last = (done.stderr.strip().splitlines() or ["no sdist downloaded"])[-1]
            raise QslmError(
                f"cannot fetch llama.cpp's converter ({spec} from the package index): {last}; "
                "pass --llama-cpp DIR (a llama.cpp checkout) instead"
            )
        sdist = sdists[0]
        staging = Path(tmp) / "llama.cpp"
        commit = _extract_converter(sdist, staging)
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        source = {
            "from": f"llama-cpp-python {version} sdist (vendor/llama.cpp)",
            "llama_cpp_commit": commit,
            "sdist": sdist.name,
            "sdist_sha256": digest,
        }
        (staging / "source.json").write_text(json.dumps(source, indent=2) + "\n")
        shutil.rmtree(root, ignore_errors=True)
        staging.rename(root)


def _extract_converter(sdist: Path, dest: Path) -> str | None:
    """Extract the converter's files into ``dest``; returns the vendored llama.cpp commit (the
    sdist keeps the submodule's git HEAD), when it is there."""
    commit = None
    with tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            if member.name.endswith(".git/modules/vendor/llama.cpp/HEAD"):
                head = tar.extractfile(member)
                commit = head.read().decode().strip() if head else None
            parts = Path(member.name).parts
            # <name>-<version>/vendor/llama.cpp/<kept>/...
            if len(parts) > 3 and parts[1:3] == ("vendor", "llama.cpp") and parts[3] in _KEEP:
                member.name = str(Path(*parts[3:]))
                members.append(member)
        tar.extractall(dest, members=members, filter="data")
    _check_folder(dest, "the llama-cpp-python sdist's vendor/llama.cpp")
    return commit
