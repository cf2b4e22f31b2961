"""The Hugging Face Hub: whether qslm may go online, which commit a name resolves to, downloads
with progress on stderr, and errors a user can act on.

All the network work is ``huggingface_hub``'s (its cache, its locks, its ``HF_ENDPOINT`` and
``HF_TOKEN``); qslm adds the offline switch, the commit that goes into the manifest, and the
translation of the library's exceptions into one message naming the option. The token is never
passed, printed or stored by qslm: huggingface_hub reads it from the environment itself, and
every message built from a library error is scrubbed of it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from qslm.errors import ConfigError, QslmError

_TRUE = {"1", "on", "yes", "true"}
# Files a model download skips: other frameworks' weights and the originals some repos add
# (Llama's original/ holds a second full copy); transformers needs none of them.
MODEL_IGNORE = ["*.gguf", "*.onnx", "*.onnx_data", "*.h5", "*.msgpack", "*.ot", "original/*"]
PICKLE_WEIGHTS = ["*.bin", "*.pt", "*.pth", "*.ckpt"]


class HubUnreachable(ConfigError):
    """The Hub could not be reached (no network, DNS, timeout): a cached copy may still do."""


def offline() -> bool:
    """Whether the Hub is switched off: ``HF_HUB_OFFLINE`` (read now, so ``qslm run
    --offline`` applies even after huggingface_hub was imported) or ``TRANSFORMERS_OFFLINE``."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    if os.environ.get("TRANSFORMERS_OFFLINE", "").strip().lower() in _TRUE:
        return True
    constants = sys.modules.get("huggingface_hub.constants")
    return bool(constants and constants.HF_HUB_OFFLINE)


def go_offline() -> None:
    """Switch the Hub off for this process and its children (``qslm run --offline``)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    # Both libraries read the variable at import; patch the copies of those already imported.
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    config = sys.modules.get("datasets.config")
    if config is not None:
        config.HF_HUB_OFFLINE = True


def scrub(text: str) -> str:
    """``text`` with the Hub token (if any) replaced, for messages built from library errors."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    return text.replace(token, "***") if token and len(token) >= 4 else text


def cached_snapshot(name: str, revision: str | None, repo_type: str = "model") -> Path | None:
    """The cached snapshot folder of ``name`` at ``revision`` (a branch, tag or commit; default
    main) if its ``config.json`` (models) or any file (datasets) is there; never the network."""
    from huggingface_hub import constants, try_to_load_from_cache

    rev = revision or "main"
    if repo_type == "model":
        found = try_to_load_from_cache(name, "config.json", revision=rev)
        return Path(found).parent if isinstance(found, str) else None
    folder = Path(constants.HF_HUB_CACHE) / f"datasets--{name.replace('/', '--')}"
    ref = folder / "refs" / rev
    commit = ref.read_text().strip() if ref.is_file() else rev
    snapshot = folder / "snapshots" / commit
    return snapshot if snapshot.is_dir() and any(snapshot.iterdir()) else None


def remote_commit(name: str, revision: str | None, repo_type: str, key: str) -> str:
    """The commit ``revision`` (default main) of the Hub repo ``name`` points to now; a
    ConfigError naming ``key`` when the repo or revision does not exist or is gated."""
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url

    try:
        info = HfApi().repo_info(name, repo_type=repo_type, revision=revision, timeout=10)
        if repo_type == "model":
            # A gated repo answers its info to anyone and refuses its files: ask for one file
            # now, so a missing licence acceptance or token fails at pre-flight.
            url = hf_hub_url(name, "config.json", revision=info.sha)
            get_hf_file_metadata(url, timeout=10)
    except Exception as exc:
        raise hub_error(exc, name, revision, repo_type, key) from None
    return str(info.sha)


def wanted_files(files: list[str], repo_type: str) -> list[str]:
    """The files of a repo a download fetches: for a model, not other frameworks' weights, and
    no pickled weights when safetensors are there."""
    from fnmatch import fnmatch

    if repo_type != "model":
        return list(files)
    skip = list(MODEL_IGNORE)
    if any(f.endswith(".safetensors") for f in files):
        skip += PICKLE_WEIGHTS
    return [f for f in files if not any(fnmatch(f, pattern) for pattern in skip)]


def is_complete(folder: Path, files: list[str]) -> bool:
    """Whether every one of ``files`` is in the snapshot ``folder``."""
    return all((folder / f).is_file() for f in files)


def download(
    name: str, revision: str | None, commit: str, repo_type: str, key: str, files: list[str]
) -> Path:
    """Download ``files`` of the Hub repo ``name`` at ``revision`` (seen at ``commit`` during
    pre-flight) into the Hugging Face cache, with huggingface_hub's progress bars on stderr,
    and return the snapshot folder, named by the commit it holds. Asking by revision rather
    than commit makes huggingface_hub record the branch in the cache, so later offline runs
    find it by the same name."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    print(f"  downloading {name} ({commit[:12]}) from the Hugging Face Hub", file=sys.stderr)
    # qslm keeps transformers' bars off while training; a download of gigabytes needs its bar
    # (unless the user switched bars off with HF_HUB_DISABLE_PROGRESS_BARS).
    was_disabled = are_progress_bars_disabled()
    if not os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"):
        enable_progress_bars()
    try:
        folder = snapshot_download(
            name, repo_type=repo_type, revision=revision or "main", allow_patterns=files
        )
    except Exception as exc:
        raise hub_error(exc, name, revision, repo_type, key) from None
    finally:
        if was_disabled:
            disable_progress_bars()
    return Path(folder)


def repo_files(name: str, commit: str, repo_type: str, key: str) -> list[str]:
    """The file names of the Hub repo ``name`` at ``commit``."""
    from huggingface_hub import HfApi

    try:
        return HfApi().list_repo_files(name, repo_type=repo_type, revision=commit)
    except Exception as exc:
        raise hub_error(exc, name, commit, repo_type, key) from None


def hub_error(
    exc: BaseException, name: str, revision: str | None, repo_type: str, key: str
) -> QslmError:
    """One message (naming ``key``) for what huggingface_hub raised about ``name``."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    what = "model" if repo_type == "model" else "dataset"
    token = "HF_TOKEN is set" if _has_token() else "no HF_TOKEN is set"
    if isinstance(exc, OfflineModeIsEnabled):
        return ConfigError(
            f"{key}: the Hub {what} {name!r} is not cached and HF_HUB_OFFLINE is set"
        )
    if isinstance(exc, GatedRepoError):
        return ConfigError(
            f"{key}: the Hub {what} {name!r} is gated ({token}): accept its conditions on its "
            "Hub page, then set HF_TOKEN to a token of that account (or run `hf auth login`)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return ConfigError(f"{key}: the Hub {what} {name!r} has no revision {revision!r}")
    if isinstance(exc, RepositoryNotFoundError):
        return ConfigError(
            f"{key}: the Hub has no {what} {name!r} ({token}; a private repo needs a token "
            "that may read it)"
        )
    if isinstance(exc, (OSError, TimeoutError)) or any(
        word in type(exc).__name__ for word in ("Connect", "Timeout", "Network")
    ):
        return HubUnreachable(
            f"{key}: the Hugging Face Hub ({constants.ENDPOINT}) cannot be reached "
            f"({type(exc).__name__}) and {name!r} is not in the local cache "
            f"({constants.HF_HUB_CACHE}). Go online, download it elsewhere with `hf download "
            f"{name}` and copy the cache, or name a local folder"
        )
    return QslmError(
        f"{key}: the Hub {what} {name!r} could not be fetched: {type(exc).__name__}: "
        f"{scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else '')}"
    )


def _has_token() -> bool:
    from huggingface_hub import get_token

    return bool(get_token())
