"""What ``qslm describe NAME`` prints: finding a component of any kind, its documentation and
its options table. Imports no component module until one is found, and the plugin machinery
only when called (``qslm.cli`` imports this module at start-up)."""

from __future__ import annotations

import difflib
import inspect
import json
import types
import typing
from typing import TYPE_CHECKING, Any, Literal

from qslm.errors import ComponentNotFound, ConfigError

if TYPE_CHECKING:
    from qslm.plugins import ComponentSpec, Registry


def find_component(registry: Registry, name: str, kind: str | None = None) -> ComponentSpec:
    """The component called ``name`` (of ``kind`` when given), whatever its kind.

    Raises :class:`ComponentNotFound` with did-you-mean suggestions across every kind, and
    :class:`ConfigError` when the name is used by several kinds and ``kind`` is not given.
    """
    from qslm.plugins import KINDS

    if kind is not None:
        if name not in registry.components[kind]:
            _not_found(registry, name, kind)
        return registry.get(kind, name, key="NAME")
    kinds = [k for k in KINDS if name in registry.components[k]]
    if not kinds:
        _not_found(registry, name, None)
    if len(kinds) > 1:
        choices = ", ".join(f"{KINDS[k][1]} (--kind {k})" for k in kinds)
        raise ConfigError(
            f"{name!r} names components of several kinds: {choices}; choose one with --kind"
        )
    return registry.components[kinds[0]][name]


def _not_found(registry: Registry, name: str, kind: str | None) -> typing.NoReturn:
    from qslm.plugins import KINDS, install_hint

    for (k, withdrawn), why in registry.withdrawn.items():
        if withdrawn == name and kind in (None, k):
            raise ComponentNotFound(why)
    words = KINDS[kind][1] if kind else "component"
    message = f"unknown {words} {name!r}"
    elsewhere = [k for k in KINDS if name in registry.components[k]]
    hint = install_hint(name)
    if elsewhere:
        message += f"; {name!r} is " + " and ".join(
            f"{_a(KINDS[k][1])} (--kind {k})" for k in elsewhere
        )
    elif hint:
        message += f"; it is provided by {hint}: pip install {hint}"
    else:
        kinds = [kind] if kind else list(KINDS)
        by_name = [(n, k) for k in kinds for n in registry.components[k]]
        close = difflib.get_close_matches(name, [n for n, _ in by_name], n=3, cutoff=0.6)
        # a name of two kinds (exact) is suggested once per kind
        matches = [f"{n!r} ({KINDS[k][1]})" for c in close for n, k in by_name if n == c]
        if matches:
            message += "; did you mean " + " or ".join(dict.fromkeys(matches)) + "?"
        else:
            message += "; `qslm plugins` lists every installed component"
    if registry.failed:
        message += "; plugins that failed to load: " + ", ".join(
            dict.fromkeys(f.name for f in registry.failed)
        )
    raise ComponentNotFound(message)


def _a(words: str) -> str:
    return f"{'an' if words[0] in 'aeiou' else 'a'} {words}"


def own_doc(cls: type) -> str:
    """The class's own docstring (never one inherited from a base class), cleaned; or ""."""
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def type_name(annotation: Any) -> str:
    """An option's type for people: ``int | None``, ``list[str]``, ``"nf4" | "none"``."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(json.dumps(value) for value in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    if origin is not None:
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def options_table(options_model: type) -> list[dict[str, str]]:
    """One row per option of a component: name, type, default, description."""
    rows = []
    for name, info in options_model.model_fields.items():
        if info.is_required():
            default = "required"
        else:  # a default_factory's value too (a list, a table), as TOML would spell it
            value = info.get_default(call_default_factory=True, validated_data={})
            default = json.dumps(value, default=str)
        rows.append(
            {
                "name": name,
                "type": type_name(info.annotation),
                "default": default,
                "description": " ".join((info.description or "").split()),
            }
        )
    return rows


def describe_lines(spec: ComponentSpec, cls: type) -> list[str]:
    """The text of ``qslm describe``: the component, its summary, its own docstring and its
    options (with the allowed values of each choice)."""
    from qslm.plugins import KINDS

    lines = [f"{KINDS[spec.kind][1]} {spec.name!r} from {spec.distribution} {spec.version}"]
    if spec.summary:
        lines.append(spec.summary)
    doc = own_doc(cls)
    if doc and doc != spec.summary:
        lines += ["", doc]
    rows = options_table(cls.Options)
    lines.append("\noptions:" if rows else "\nno options")
    for row in rows:
        lines.append(f"  {row['name']} ({row['type']}, default {row['default']})")
        if row["description"]:
            lines.append(f"      {row['description']}")
    return lines
