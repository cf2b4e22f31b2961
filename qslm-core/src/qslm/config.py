"""``pipeline.toml`` -> validated, typed objects.

Every error names the file and the dotted key path, suggests close matches for unknown keys
and names, and is raised as :class:`~qslm.errors.ConfigError` (exit code 2).
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from qslm.components import Component, Options
from qslm.errors import ConfigError, QslmError
from qslm.plugins import ComponentSpec, Registry

if TYPE_CHECKING:
    from qslm.train.module_select import ModuleSelectConfig

_TYPE_WORDS = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "string_type": "a string",
    "bool_type": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def format_validation_error(exc: ValidationError, model: type[BaseModel], prefix: str) -> list[str]:
    """One line per problem: ``key.path: what is wrong``, with "did you mean" for unknown keys."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        # Union members add their type name to the location; keep the user's key path only.
        loc = [p for p in loc if not any(c in p for c in "[]()") and p not in _TYPE_WORDS]
        path = ".".join([prefix, *loc] if prefix else loc) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            known = _known_keys(model, loc[:-1])
            msg = "unknown key"
            close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6) if loc else []
            if close:
                msg += f"; did you mean {close[0]!r}?"
            elif known:
                msg += " (allowed: " + ", ".join(known) + ")"
        elif kind == "missing":
            msg = "required key is missing"
        elif kind in _TYPE_WORDS:
            msg = f"expected {_TYPE_WORDS[kind]}, got {_show(err['input'])}"
        else:
            text = err["msg"]
            text = text[0].lower() + text[1:] if text else kind
            text = text.replace("input should", "must").replace("value error, ", "")
            msg = f"{text}, got {_show(err['input'])}"
        lines.append(f"{path}: {msg}")
    return lines


def _known_keys(model: type[BaseModel], loc: list[str]) -> list[str]:
    current: Any = model
    for part in loc:
        field_info = getattr(current, "model_fields", {}).get(part)
        if field_info is None:
            return []
        current = field_info.annotation
    return list(getattr(current, "model_fields", {}))


def validate_options(model: type[BaseModel], raw: Any, *, file: str, prefix: str) -> BaseModel:
    """Validate ``raw`` against ``model``; a :class:`ConfigError` names file and key path."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: {prefix}: expected a table, got {_show(raw)}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = format_validation_error(exc, model, prefix)
        raise ConfigError("\n".join(f"{file}: {line}" for line in lines)) from None


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
    # Validated by qslm.train.module_select.parse_config (errors: train.select_modules.<key>).
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


@dataclass
class SelectConfig:
    size: int
    solvers: list[ComponentRef]  # the primary solver, then its fallbacks in order
    race: list[ComponentRef]
    time_limit: float | None
    options: dict[str, Any]


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
    base = path.parent

    problems: list[str] = []

    def resolve(kind: str, name: str, key: str, options: Any, options_key: str):
        # Errors of every component are collected, so one run of `qslm validate` shows all.
        try:
            spec = registry.get(kind, name, key=key)
            try:
                cls = spec.load()
            except QslmError as exc:
                raise ConfigError(f"{key}: {exc}") from None
            opts = validate_options(cls.Options, options, file=file, prefix=options_key)
        except ConfigError as exc:
            text = str(exc)
            problems.extend(
                line if line.startswith(f"{file}: ") else f"{file}: {line}"
                for line in text.split("\n")
            )
            return None
        return ComponentRef(key, spec, cls, opts, base)

    data = resolve("data_source", top.data.source, "data.source", top.data.options, "data.options")
    attention = resolve(
        "attention",
        top.attention.backend,
        "attention.backend",
        top.attention.options,
        "attention.options",
    )
    train = resolve(
        "trainer", top.train.trainer, "train.trainer", top.train.options, "train.options"
    )
    evaluators = [
        resolve("evaluator", name, f"evaluate.{name}", opts, f"evaluate.{name}")
        for name, opts in top.evaluate.items()
    ]
    select = None
    if top.select is not None:
        s = top.select
        names = [s.solver, *s.fallback]
        for name in s.solvers:
            if name not in names and name not in s.race:
                problems.append(
                    f"{file}: select.solvers.{name}: options for a solver that is not used "
                    f"(solver, fallback and race name: {', '.join(names + s.race)})"
                )
        solvers = [
            resolve(
                "qubo_solver",
                name,
                "select.solver" if i == 0 else f"select.fallback[{i - 1}]",
                s.solvers.get(name, {}),
                f"select.solvers.{name}",
            )
            for i, name in enumerate(names)
        ]
        race = [
            resolve(
                "qubo_solver",
                name,
                f"select.race[{i}]",
                s.solvers.get(name, {}),
                f"select.solvers.{name}",
            )
            for i, name in enumerate(s.race)
        ]
        try:
            from qslm.qubo.select import parse_select_options

            parse_select_options(dict(s.options), file=file)
        except ConfigError as exc:
            problems.extend(str(exc).split("\n"))
        select = SelectConfig(s.size, solvers, race, s.time_limit, dict(s.options))
    select_modules = None
    if top.train.select_modules is not None:
        from qslm.train.module_select import parse_config

        if train is not None and not getattr(train.cls, "supports_module_selection", False):
            problems.append(
                f"{file}: train.select_modules: trainer {train.spec.name!r} does not support "
                'module selection (it needs a trainer with LoRA modules, e.g. "lora")'
            )
        select_modules = parse_config(
            top.train.select_modules, file=file, resolve=resolve, problems=problems
        )
    track = None
    if top.track is not None:
        track = resolve(
            "tracker", top.track.backend, "track.backend", top.track.options, "track.options"
        )
    if problems:
        raise ConfigError("\n".join(problems))

    out: Path | None
    if output is not None:
        out = Path(output).absolute()
    elif top.pipeline.output is not None:
        out = (base / top.pipeline.output).absolute()
    else:
        out = None
    return PipelineConfig(
        path=path,
        name=top.pipeline.name,
        seed=top.pipeline.seed,
        output=out,
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
