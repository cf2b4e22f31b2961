"""What the conformance kits share: making a component from a name, a class or a factory, a
run context without a pipeline, and a snapshot of a folder's files (to see what was written).

Nothing heavy is imported here: the kits for trainers and attention backends import torch
inside their checks.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qslm.components import Component
from qslm.context import RunContext

Target = str | type | Callable[[], Component] | Component
KIND_OF = {
    "DataSource": "data_source",
    "Evaluator": "evaluator",
    "Trainer": "trainer",
    "AttentionBackend": "attention",
}


def make_component(
    target: Target,
    base: type,
    options: dict[str, Any] | None = None,
    *,
    base_dir: Path | None = None,
) -> Any:
    """A component of kind ``base`` from a registered name, a class (built with ``options``),
    a zero-argument factory or an instance."""
    if isinstance(target, base):
        return target
    if isinstance(target, str):
        from qslm.plugins import get_registry

        cls = get_registry().get(KIND_OF[base.__name__], target).load()
    elif isinstance(target, type):
        cls = target
    elif callable(target):
        made = target()
        assert isinstance(made, base), f"the factory returned {made!r}, not a {base.__name__}"
        return made
    else:
        raise TypeError(f"component must be a name, a class or a factory, got {target!r}")
    assert isinstance(cls, type) and issubclass(cls, base), (
        f"{target!r} is {cls!r}, not a subclass of qslm.api.{base.__name__}"
    )
    return cls(cls.Options.model_validate(options or {}), base_dir=base_dir)


def make_context(
    build_dir: Path, *, seed: int = 0, resume: bool = False, progress: Any = None
) -> RunContext:
    """A run context for calling one component outside a pipeline: its staging build folder
    is ``build_dir`` (created), no pipeline config and no registry."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    extra = {"progress": progress} if progress is not None else {}
    return RunContext(
        config=None,  # type: ignore[arg-type]  (components called alone have no pipeline)
        registry=None,  # type: ignore[arg-type]
        build_dir=build_dir,
        seed=seed,
        resume=resume,
        **extra,
    )


def snapshot(folder: Path, *, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``folder``, except under ``skip``."""
    folder = Path(folder)
    skipped = [Path(s).resolve() for s in skip]
    out = {}
    for path in sorted(folder.rglob("*")):
        resolved = path.resolve()
        if any(resolved == s or s in resolved.parents for s in skipped) or not path.is_file():
            continue
        out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Files added, removed or rewritten between two snapshots."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def is_metric_value(value: Any) -> bool:
    """A finite int or float, not a bool: what metrics.json, the report and trackers take."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def json_safe(value: Any, what: str) -> None:
    """``value`` survives ``json.dumps`` unchanged (it goes into manifest.json)."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{what} must be JSON-serialisable: {exc}") from None
    assert json.loads(text) == value, f"{what} changes through JSON (tuples? non-str keys?)"
