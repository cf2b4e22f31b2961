"""``pipeline.toml`` -> validated, typed objects.

Every error names the file and the dotted key path, suggests close matches for unknown keys
and names, and is raised as :class:`~qslm.errors.ConfigError` (exit code 2).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from qslm.components import (  # noqa: F401 (the validation helpers' old home)
    Options,
    format_validation_error,
    validate_options,
)
from qslm.errors import ConfigError, QslmError
from qslm.plugins import ComponentRef, Registry
from qslm.stages.select import SelectConfig, parse_select_options
from qslm.train.module_select import KEY as MODULE_SELECT_KEY
from qslm.train.module_select import ModuleSelectConfig, ModuleSelectOptions

# --- the pipeline file's own tables -------------------------------------------------------


class PipelineSection(Options):
    """``[pipeline]``: the build's name, its seed and where builds go."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)
    # numpy's and torch's seeding take 32 bits; a larger seed would fail only in training
    seed: int = Field(0, ge=0, le=2**32 - 1)
    output: str | None = None
    description: str = ""

    @field_validator("output")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\0" in value:  # no file system takes one; run would crash
            raise ValueError("a path cannot hold a NUL character")
        return value


class DataSection(Options):
    """``[data]``: the data source and its options."""

    source: str = "text"
    options: dict[str, Any] = {}


class SelectSection(Options):
    """``[select]``: choose ``size`` training records with a QUBO and a solver."""

    size: int = Field(gt=0)
    # tabu, not anneal: under the exactly-k penalty, single-flip annealing freezes (a swap
    # must pass through an infeasible state); measured in the select stage's tests.
    solver: str = "tabu"
    fallback: list[str] = []
    race: list[str] = []
    time_limit: float | None = Field(default=None, gt=0)
    options: dict[str, Any] = {}
    solvers: dict[str, dict[str, Any]] = {}


class AttentionSection(Options):
    """``[attention]``: the attention backend used in training and evaluation."""

    backend: str = "exact"
    options: dict[str, Any] = {}


class TrainSection(Options):
    """``[train]``: the trainer and its options."""

    trainer: str = "scratch"
    options: dict[str, Any] = {}
    # Validated in load_pipeline against ModuleSelectOptions (errors: train.select_modules.<key>).
    select_modules: dict[str, Any] | None = None


class TrackSection(Options):
    """``[track]``: the experiment tracker (``qslm.tracking``) and its options."""

    backend: str
    options: dict[str, Any] = {}


class PipelineFile(Options):
    pipeline: PipelineSection
    data: DataSection = DataSection()
    select: SelectSection | None = None
    attention: AttentionSection = AttentionSection()
    train: TrainSection = TrainSection()
    evaluate: dict[str, dict[str, Any]] = {"perplexity": {}}
    track: TrackSection | None = None


# --- resolved objects ---------------------------------------------------------------------


@dataclass
class PipelineConfig:
    path: Path
    name: str
    seed: int
    output: Path | None
    description: str
    data: ComponentRef
    attention: ComponentRef
    train: ComponentRef
    evaluators: list[ComponentRef]
    select: SelectConfig | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    select_modules: ModuleSelectConfig | None = None  # [train.select_modules]
    track: ComponentRef | None = None  # [track]; not in components(): its options hold URIs

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def components(self) -> list[ComponentRef]:
        refs = [self.data]
        if self.select is not None:
            refs += self.select.solvers + self.select.race
        if self.select_modules is not None:
            refs += self.select_modules.solvers
        return [*refs, self.attention, self.train, *self.evaluators]


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; syntax errors name the line and column."""
    try:
        # utf-8-sig: editors on Windows start UTF-8 files with a byte-order mark, which TOML
        # forbids; it carries no meaning, so it is dropped rather than reported
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a pipeline TOML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None


def parse_key_value(item: str, flag: str, example: str) -> tuple[str, Any]:
    """``KEY=VALUE`` given to ``flag``: VALUE read as a TOML value (``3``, ``true``,
    ``[0.1, 5.0]``), else as a plain string. ``example`` completes the error message."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {example}")
    try:
        return key, tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key, value


def parse_override(item: str) -> tuple[list[str], Any]:
    """``KEY=VALUE`` from ``--set``: VALUE is read as a TOML value, else as a plain string."""
    key, parsed = parse_key_value(item, "--set", "train.options.max_steps=50")
    # KEY is a TOML dotted key, so quoted parts may hold dots: select.solvers."dwave.sa".seed
    try:
        tree: Any = tomllib.loads(f"{key} = 0")
    except tomllib.TOMLDecodeError:
        raise ConfigError(f"--set {item!r}: {key!r} is not a dotted TOML key") from None
    parts = []
    while isinstance(tree, dict):
        [(part, tree)] = tree.items()
        parts.append(part)
    return parts, parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> None:
    for item in overrides:
        parts, value = parse_override(item)
        table = raw
        for i, part in enumerate(parts[:-1]):
            nxt = table.setdefault(part, {})
            if not isinstance(nxt, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"--set {item!r}: {where} is not a table")
            table = nxt
        table[parts[-1]] = value


def load_pipeline(
    path: str | Path, registry: Registry, *, overrides: list[str] = (), output: str | None = None
) -> PipelineConfig:
    """Read, validate and resolve a pipeline file (imports only the named components' modules)."""
    path = Path(path).absolute()
    raw = read_toml(path)
    apply_overrides(raw, list(overrides))
    file = path.name
    top = validate_options(PipelineFile, raw, file=file, prefix="")
    assert isinstance(top, PipelineFile)
    r = _Resolver(registry, file, path.parent)
    data = r.component("data_source", top.data.source, "data.source", top.data.options)
    attention = r.component(
        "attention", top.attention.backend, "attention.backend", top.attention.options
    )
    train = r.component("trainer", top.train.trainer, "train.trainer", top.train.options)
    evaluators = [
        r.component("evaluator", name, f"evaluate.{name}", opts, f"evaluate.{name}")
        for name, opts in top.evaluate.items()
    ]
    select = _select(top.select, r) if top.select is not None else None
    select_modules = None
    if top.train.select_modules is not None:
        select_modules = _select_modules(top.train.select_modules, train, r)
    track = None
    if top.track is not None:
        track = r.component("tracker", top.track.backend, "track.backend", top.track.options)
    if r.problems:
        raise ConfigError("\n".join(r.problems))
    return PipelineConfig(
        path=path,
        name=top.pipeline.name,
        seed=top.pipeline.seed,
        output=_output_dir(output, top.pipeline.output, path.parent),
        description=top.pipeline.description,
        data=data,
        attention=attention,
        train=train,
        evaluators=evaluators,
        select=select,
        raw=raw,
        select_modules=select_modules,
        track=track,
    )


class _Resolver:
    """Resolves the components a pipeline names; collects every problem instead of stopping
    at the first, so one run of ``qslm validate`` shows them all."""

    def __init__(self, registry: Registry, file: str, base: Path) -> None:
        self.registry, self.file, self.base = registry, file, base
        self.problems: list[str] = []

    def component(
        self, kind: str, name: str, key: str, options: Any, options_key: str | None = None
    ) -> ComponentRef | None:
        """``name`` of ``kind`` (named at ``key``) with its options validated, or None."""
        file = self.file
        options_key = options_key or key.rpartition(".")[0] + ".options"
        try:
            spec = self.registry.get(kind, name, key=key)
            try:
                cls = spec.load()
            except QslmError as exc:
                raise ConfigError(f"{key}: {exc}") from None
            opts = validate_options(cls.Options, options, file=file, prefix=options_key)
        except ConfigError as exc:
            self.problems.extend(
                line if line.startswith(f"{file}: ") else f"{file}: {line}"
                for line in str(exc).split("\n")
            )
            return None
        return ComponentRef(key, spec, cls, opts, self.base)

    def solver_chain(
        self, prefix: str, names: list[str], race: list[str], solvers: dict[str, Any]
    ) -> tuple[list[ComponentRef | None], list[ComponentRef | None]]:
        """The solver and its fallbacks, then the racers, of a table at ``prefix`` (``select``
        or ``train.select_modules``); options for a solver not named there are a problem."""
        allowed = (
            "solver, fallback and race name" if prefix == "select" else "solver and fallback name"
        )
        for name in solvers:
            if name not in names and name not in race:
                self.problems.append(
                    f"{self.file}: {prefix}.solvers.{name}: options for a solver that is not "
                    f"used ({allowed}: {', '.join(names + race)})"
                )
        chain = [
            self.component(
                "qubo_solver",
                name,
                f"{prefix}.solver" if i == 0 else f"{prefix}.fallback[{i - 1}]",
                solvers.get(name, {}),
                f"{prefix}.solvers.{name}",
            )
            for i, name in enumerate(names)
        ]
        racers = [
            self.component(
                "qubo_solver",
                name,
                f"{prefix}.race[{i}]",
                solvers.get(name, {}),
                f"{prefix}.solvers.{name}",
            )
            for i, name in enumerate(race)
        ]
        return chain, racers


def _select(s: SelectSection, r: _Resolver) -> SelectConfig:
    solvers, race = r.solver_chain("select", [s.solver, *s.fallback], s.race, s.solvers)
    try:
        parse_select_options(dict(s.options), file=r.file)
    except ConfigError as exc:
        r.problems.extend(str(exc).split("\n"))
    return SelectConfig(s.size, solvers, race, s.time_limit, dict(s.options))


def _select_modules(
    raw: dict[str, Any], train: ComponentRef | None, r: _Resolver
) -> ModuleSelectConfig | None:
    """``[train.select_modules]``: its options and solver chain (errors name its keys)."""
    key = MODULE_SELECT_KEY
    if train is not None and not getattr(train.cls, "supports_module_selection", False):
        r.problems.append(
            f"{r.file}: {key}: trainer {train.spec.name!r} does not support "
            'module selection (it needs a trainer with LoRA modules, e.g. "lora")'
        )
    try:
        opts = validate_options(ModuleSelectOptions, raw, file=r.file, prefix=key)
    except ConfigError as exc:
        r.problems.extend(str(exc).split("\n"))
        return None
    assert isinstance(opts, ModuleSelectOptions)
    refs, _ = r.solver_chain(key, [opts.solver, *opts.fallback], [], opts.solvers)
    if any(ref is None for ref in refs):
        return None
    return ModuleSelectConfig(opts, refs)


def _output_dir(given: str | None, configured: str | None, base: Path) -> Path | None:
    if given is not None:
        return Path(given).absolute()
    if configured is not None:
        return (base / configured).absolute()
    return None
