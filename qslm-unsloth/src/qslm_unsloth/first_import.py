"""Importing Unsloth the way it asks to be imported: before transformers, trl and peft.

``import unsloth`` patches those libraries (on a GPU: their attention, loss and trainer code;
on a CPU: ``TrainingArguments`` defaults) and warns that some patches are missed when they were
imported first. :func:`import_unsloth` is called by the trainer's pre-flight, which ``qslm run``
and ``qslm validate`` reach before anything imports transformers, so in the CLI the order is
right. A program that imported transformers itself and then uses the trainer gets a warning
naming the modules that came first: training still works (on the CPU backend every patch is
class-level and applies late just as well; on a GPU Unsloth's model patches are applied when
the model loads), so re-executing the process would buy little and lose the caller's state.

Unsloth decides its device at import: a GPU if torch sees one, else its CPU fallback, unless
``UNSLOTH_DISABLE_CPU_FALLBACK=1``, when it raises. That refusal becomes a
:class:`~qslm.errors.ConfigError` here, at pre-flight, before any data is read.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec
from types import ModuleType

from qslm.api import ConfigError

# The libraries Unsloth patches and wants to import after itself (its own list).
PATCHED = ("transformers", "trl", "peft")
DISABLE_FALLBACK = "UNSLOTH_DISABLE_CPU_FALLBACK"
TESTED_UNSLOTH = "2026.10.9"
INSTALL_HINT = (
    "install it the way qslm-unsloth's README says: on a CPU-only machine "
    f"`pip install --no-deps unsloth=={TESTED_UNSLOTH} unsloth_zoo=={TESTED_UNSLOTH}` (its "
    "other dependencies come with qslm-unsloth); on a CUDA machine `pip install unsloth` with "
    "your torch pinned (-c a file holding `torch==<your version>`)"
)


@dataclass(frozen=True)
class UnslothImport:
    """What happened when Unsloth was imported in this process."""

    version: str
    device: str  # Unsloth's DEVICE_TYPE: "cuda", "hip", "xpu", "cpu", ...
    imported_before: tuple[str, ...]  # patched libraries already imported at that moment

    @property
    def cpu_fallback(self) -> bool:
        return self.device == "cpu"

    def as_manifest(self) -> dict[str, object]:
        return {
            "version": self.version,
            "device": self.device,
            "cpu_fallback": self.cpu_fallback,
            "imported_before_unsloth": list(self.imported_before),
        }


_done: UnslothImport | None = None


def require_installed(key: str) -> None:
    """ConfigError with the install commands when unsloth or unsloth_zoo is missing (checked
    without importing them)."""
    missing = [name for name in ("unsloth", "unsloth_zoo") if find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"{key}: the unsloth trainer needs {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed; {INSTALL_HINT}"
        )


def import_unsloth(key: str = "train.trainer") -> UnslothImport:
    """Import Unsloth once per process and say how it went; a refused device (no GPU and the
    CPU fallback disabled) is a ConfigError naming ``key``."""
    global _done
    if _done is not None:
        return _done
    require_installed(key)
    before = tuple(name for name in PATCHED if name in sys.modules)
    if before:
        warnings.warn(
            f"qslm-unsloth: {', '.join(before)} {'was' if len(before) == 1 else 'were'} "
            "imported before Unsloth, which patches them; training goes on, but on a GPU some "
            "of Unsloth's optimisations may be missing. `qslm run` imports Unsloth first; in "
            "your own program put `import unsloth` before any transformers/trl/peft import.",
            stacklevel=2,
        )
    module = _import(key)
    _done = UnslothImport(
        version=getattr(module, "__version__", None) or metadata.version("unsloth"),
        device=str(getattr(module, "DEVICE_TYPE", "unknown")),
        imported_before=before,
    )
    return _done


def _import(key: str) -> ModuleType:
    # Unsloth prints its banner on stdout; qslm keeps stdout for command results (JSON, plans)
    # and reports progress on stderr, so the banner goes there.
    try:
        with contextlib.redirect_stdout(sys.stderr):
            import unsloth
    except NotImplementedError as exc:
        # Unsloth's own refusal: no accelerator, and the CPU fallback not allowed.
        if os.environ.get(DISABLE_FALLBACK, "0") == "1":
            raise ConfigError(
                f"{key}: no GPU found and {DISABLE_FALLBACK}=1 forbids Unsloth's CPU fallback "
                f"(Unsloth said: {exc}). Unset {DISABLE_FALLBACK} to train on the CPU (slowly), "
                "or run on a machine with a GPU."
            ) from None
        raise ConfigError(f"{key}: Unsloth cannot run on this machine: {exc}") from None
    except ImportError as exc:
        raise ConfigError(
            f"{key}: importing unsloth failed ({exc}); a dependency is missing or has a "
            f"version Unsloth does not accept. {INSTALL_HINT}"
        ) from None
    return unsloth
