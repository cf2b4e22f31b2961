"""The plugin manager: built-in plugins and entry points (group ``qslm``), and the registry of
components they register.

Registrations are lazy: a component is a class or a ``"module:Class"`` string, imported only
when a pipeline uses it.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from qslm import __version__, hookspecs
from qslm.errors import ComponentNotFound, PluginError

if TYPE_CHECKING:
    from qslm.components import Component, Options

ENTRY_POINT_GROUP = "qslm"

# The built-in classical components register through the same hooks as any plugin.
DEFAULT_PLUGINS = (
    "qslm.data.plugin",
    "qslm.attention.plugin",
    "qslm.qubo.plugin",
    "qslm.train.plugin",
    "qslm.evaluate.plugin",
    "qslm.tracking.plugin",
    "qslm.commands.plugin",  # the CLI's built-in commands
)

# kind -> (hook name, words for messages)
KINDS: dict[str, tuple[str, str]] = {
    "data_source": ("qslm_register_data_sources", "data source"),
    "attention": ("qslm_register_attention_backends", "attention backend"),
    "qubo_solver": ("qslm_register_qubo_solvers", "QUBO solver"),
    "trainer": ("qslm_register_trainers", "trainer"),
    "evaluator": ("qslm_register_evaluators", "evaluator"),
    "tracker": ("qslm_register_trackers", "tracker"),
}

# Names that a known qslm package provides, for "pip install ..." hints.
KNOWN_PACKAGES: dict[str, str] = {
    "dwave.": "qslm-backend-dwave",
    "qiskit.": "qslm-backend-qiskit",
    "azure.": "qslm-backend-azure",
    "unsloth": "qslm-unsloth",
}


class Register(Protocol):
    """The ``register`` callback a registration hook receives: ``register(name, target,
    summary="")``, target a component class or a lazy ``"module:Class"`` string."""

    def __call__(self, name: str, target: str | type, *, summary: str = "") -> None: ...


@dataclass(frozen=True)
class ComponentSpec:
    """One registered component: where it comes from and how to load it."""

    kind: str
    name: str
    target: str | type
    plugin: str
    distribution: str
    version: str
    summary: str = ""

    def load(self) -> type[Component]:
        """Import the component class (a ``"module:Class"`` target is imported now)."""
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # a broken plugin must not look like a qslm bug
            raise PluginError(
                f"{KINDS[self.kind][1]} {self.name!r} from {self.distribution} could not be "
                f"imported ({self.target}): {type(exc).__name__}: {exc}"
            ) from exc
        return obj

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "name": self.name,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "summary": self.summary,
            "target": self.target if isinstance(self.target, str) else _qualname(self.target),
        }


@dataclass
class ComponentRef:
    """A component named in the pipeline, with its validated options."""

    key: str  # where it was named, e.g. "train.trainer"
    spec: ComponentSpec
    cls: type[Component]
    options: Options
    base_dir: Path

    def create(self) -> Component:
        return self.cls(self.options, base_dir=self.base_dir)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "plugin": self.spec.plugin,
            "distribution": self.spec.distribution,
            "version": self.spec.version,
            "options": self.options.model_dump(mode="json"),
        }


@dataclass(frozen=True)
class FailedPlugin:
    name: str
    distribution: str
    version: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {
            "plugin": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "error": self.error,
        }


@dataclass
class Registry:
    """Every component by kind and name, plus the plugins that failed to load."""

    components: dict[str, dict[str, ComponentSpec]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    failed: list[FailedPlugin] = field(default_factory=list)
    plugins: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (dist, version)
    # (kind, name) -> why: names two plugins claimed, used by neither
    withdrawn: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, spec: ComponentSpec) -> None:
        """Register ``spec``; a name already taken is a clash (see :func:`_clash`)."""
        key = (spec.kind, spec.name)
        if key in self.withdrawn:
            self._refuse(spec, self.withdrawn[key])
            return
        existing = self.components[spec.kind].get(spec.name)
        if existing is None:
            self.components[spec.kind][spec.name] = spec
            return
        message = _clash(existing, spec)
        if _strict():
            raise PluginError(message)
        if _builtin(existing):  # a built-in keeps its own name
            self._refuse(spec, message)
        elif _builtin(spec):
            self.components[spec.kind][spec.name] = spec
            self._refuse(existing, message)
        else:
            # Neither wins: which one came first depends on the install order, so using
            # either would make the pipeline's meaning depend on it.
            del self.components[spec.kind][spec.name]
            self.withdrawn[key] = message
            self._refuse(existing, message)
            self._refuse(spec, message)

    def _refuse(self, spec: ComponentSpec, message: str) -> None:
        self.failed.append(FailedPlugin(spec.plugin, spec.distribution, spec.version, message))

    def all(self) -> list[ComponentSpec]:
        return [spec for kind in KINDS for spec in self.components[kind].values()]

    def get(self, kind: str, name: str, *, key: str = "") -> ComponentSpec:
        """The component, or a :class:`ComponentNotFound` with close matches and install hints."""
        try:
            return self.components[kind][name]
        except KeyError:
            pass
        if (kind, name) in self.withdrawn:
            where = f"{key}: " if key else ""
            raise ComponentNotFound(f"{where}{self.withdrawn[kind, name]}")
        words = KINDS[kind][1]
        where = f"{key}: " if key else ""
        message = f"{where}unknown {words} {name!r}"
        hint = install_hint(name)
        if hint:
            message += f"; it is provided by {hint}: pip install {hint}"
        else:
            close = difflib.get_close_matches(name, list(self.components[kind]), n=3, cutoff=0.6)
            if close:
                message += "; did you mean " + " or ".join(repr(c) for c in close) + "?"
        available = ", ".join(sorted(self.components[kind])) or "none"
        message += f" (installed: {available})"
        if self.failed:
            message += "; plugins that failed to load: " + ", ".join(
                dict.fromkeys(f.name for f in self.failed)
            )
        raise ComponentNotFound(message)


def _builtin(spec: ComponentSpec) -> bool:
    return spec.plugin in DEFAULT_PLUGINS and spec.distribution == "qslm-core"


def _who(spec: ComponentSpec) -> str:
    return f"{spec.plugin} (distribution {spec.distribution} {spec.version})".replace(" )", ")")


def _clash(existing: ComponentSpec, new: ComponentSpec) -> str:
    """The message for two plugins registering one component name."""
    words = KINDS[new.kind][1]
    if _builtin(existing) or _builtin(new):
        builtin, other = (existing, new) if _builtin(existing) else (new, existing)
        return (
            f"plugin {_who(other)} registers the {words} {new.name!r}, the name of a built-in "
            f"of {_who(builtin)}; the built-in keeps it: rename the plugin's component"
        )
    return (
        f"two plugins register the {words} {new.name!r}: {_who(existing)} and {_who(new)}; "
        "neither is used under that name: uninstall one, or block one with "
        "QSLM_DISABLE_PLUGINS"
    )


def install_hint(name: str) -> str | None:
    """The qslm package that provides a component called ``name``, if a known one does."""
    for prefix, package in KNOWN_PACKAGES.items():
        if name == prefix or name.startswith(prefix) or name == prefix.rstrip("."):
            return package
    return None


def _qualname(obj: type) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _env_list(name: str) -> set[str]:
    return {item.strip() for item in os.environ.get(name, "").split(",") if item.strip()}


def _strict() -> bool:
    return os.environ.get("QSLM_STRICT_PLUGINS", "").lower() not in ("", "0", "false", "no")


def make_plugin_manager(
    extra_plugins: Iterable[object] = (), *, entry_points: bool = True
) -> tuple[pluggy.PluginManager, Registry]:
    """A plugin manager with the built-ins, the ``qslm`` entry points and ``extra_plugins``.

    Plugins named in ``QSLM_DISABLE_PLUGINS`` (comma separated; entry-point names or built-in
    module names) are blocked. A plugin that fails to import is recorded in the registry's
    ``failed`` list; with ``QSLM_STRICT_PLUGINS=1`` it raises :class:`PluginError`.
    """
    pm = pluggy.PluginManager("qslm")
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    disabled = _env_list("QSLM_DISABLE_PLUGINS")
    for name in disabled:
        pm.set_blocked(name)

    for module_name in DEFAULT_PLUGINS:
        if module_name in disabled:
            continue
        pm.register(importlib.import_module(module_name), name=module_name)
        registry.plugins[module_name] = ("qslm-core", __version__)

    if entry_points:
        _load_entry_points(pm, registry, disabled)

    for plugin in extra_plugins:
        name = pm.register(plugin)
        if name is not None:
            registry.plugins[name] = (getattr(plugin, "__qslm_distribution__", "(in-process)"), "")
    return pm, registry


def _load_entry_points(pm: pluggy.PluginManager, registry: Registry, disabled: set[str]) -> None:
    # Our own loop rather than pluggy's load_setuptools_entrypoints: that one stops at the
    # first plugin that fails to import, and we must report it and keep the others working.
    by_name: dict[str, list[metadata.EntryPoint]] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        by_name.setdefault(ep.name, []).append(ep)
    for name, eps in by_name.items():
        if name in disabled or pm.is_blocked(name):
            continue
        if len(eps) > 1 or pm.has_plugin(name):
            _name_clash(pm, registry, name, eps)
            continue
        [ep] = eps
        dist, version = _dist(ep)
        try:
            plugin = ep.load()
            pm.register(plugin, name=name)
        except Exception as exc:
            _fail(registry, name, dist, version, f"{type(exc).__name__}: {exc}", exc)
            continue
        registry.plugins[name] = (dist, version)


def _dist(ep: metadata.EntryPoint) -> tuple[str, str]:
    if ep.dist is None:
        return "(unknown distribution)", ""
    return ep.dist.name, ep.dist.version


def _fail(
    registry: Registry, name: str, dist: str, version: str, error: str, cause: BaseException | None
) -> None:
    """Record a plugin that cannot be used; in strict mode, stop with a :class:`PluginError`."""
    if _strict():
        raise PluginError(
            f"plugin {name!r} (distribution {dist} {version}) failed to load: {error}"
        ) from cause
    registry.failed.append(FailedPlugin(name, dist, version, error))


def _name_clash(
    pm: pluggy.PluginManager, registry: Registry, name: str, eps: list[metadata.EntryPoint]
) -> None:
    """Entry points of several distributions (or of one and a built-in) share a plugin name:
    none of them is loaded, since which one came first depends on the install order."""
    dists = [" ".join(_dist(ep)).strip() for ep in eps]
    if pm.has_plugin(name):
        dists.insert(0, registry.plugins.get(name, ("a built-in plugin", ""))[0])
    error = (
        f"the entry point name {name!r} in group {ENTRY_POINT_GROUP!r} is used by "
        f"{' and '.join(dists)}; it is the plugin's name and must be unique: rename it in "
        "one distribution's entry points, or uninstall one"
    )
    if _strict():
        raise PluginError(f"plugin {name!r}: {error}")
    for ep in eps:
        registry.failed.append(FailedPlugin(name, *_dist(ep), error))


def collect(pm: pluggy.PluginManager, registry: Registry) -> Registry:
    """Call every registration hook and fill the registry."""
    for kind, (hook_name, _) in KINDS.items():
        hook = getattr(pm.hook, hook_name)
        # Each implementation is called on its own so that a registration knows which plugin
        # made it (for name clashes and for `qslm plugins`), passing only the arguments it
        # declares, as pluggy would.
        for impl in hook.get_hookimpls():
            plugin_name = impl.plugin_name
            dist, version = registry.plugins.get(plugin_name, ("(in-process)", ""))
            if impl.wrapper or impl.hookwrapper:
                # A wrapper's registrations could not be attributed to its plugin, and
                # calling it directly would only build its generator: refused, never dropped.
                error = (
                    f"its {hook_name} is a hook wrapper (wrapper=True or hookwrapper=True); "
                    "registration hooks take plain @hookimpl implementations"
                )
                _fail(registry, plugin_name, dist, version, error, None)
                continue
            args = {"register": _make_register(registry, kind, plugin_name, dist, version)}
            try:
                impl.function(*(args[a] for a in impl.argnames))
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, PluginError) and _strict():
                    raise
                if _strict():
                    raise PluginError(
                        f"plugin {plugin_name!r} (distribution {dist}) failed in {hook_name}: "
                        f"{error}"
                    ) from exc
                registry.failed.append(FailedPlugin(plugin_name, dist, version, error))
    return registry


def _make_register(
    registry: Registry, kind: str, plugin: str, dist: str, version: str
) -> Callable[..., None]:
    def register(name: str, target: str | type, *, summary: str = "") -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {KINDS[kind][1]} without a name")
        if isinstance(target, str) and ":" not in target:
            raise PluginError(
                f"plugin {plugin!r}: target of {name!r} must be a class or 'module:Class', "
                f"got {target!r}"
            )
        registry.add(ComponentSpec(kind, name, target, plugin, dist, version, summary))

    return register


_cached: tuple[pluggy.PluginManager, Registry] | None = None


def get_registry(*, refresh: bool = False) -> Registry:
    """The process-wide registry (built once)."""
    return _get(refresh)[1]


def get_plugin_manager(*, refresh: bool = False) -> pluggy.PluginManager:
    return _get(refresh)[0]


def _get(refresh: bool) -> tuple[pluggy.PluginManager, Registry]:
    global _cached
    if _cached is None or refresh:
        pm, registry = make_plugin_manager()
        _cached = (pm, collect(pm, registry))
    return _cached


def loaded_modules_report() -> list[str]:
    """Heavy modules already imported (used by tests and QSLM_DEBUG)."""
    heavy = ("torch", "transformers", "qiskit", "dwave", "dimod", "azure.quantum", "unsloth")
    return sorted(m for m in heavy if m in sys.modules)
