"""Base classes and small data types shared by every component kind.

A component is a class with an ``Options`` model (its TOML table; unknown keys rejected) and
the method of its kind. Modules that define components import heavy libraries (torch,
transformers, SDKs) inside methods, so that validating a pipeline stays cheap.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from qslm.errors import ConfigError

if TYPE_CHECKING:
    from qslm.context import RunContext
    from qslm.resources import Estimate


class Options(BaseModel):
    """A component's options table. Strict types, unknown keys rejected, immutable."""

    # Options are described with Field(description=...) (qslm describe, JSON schema); attribute
    # docstrings work too, for plugins written that way.
    # allow_inf_nan=False: TOML has inf and nan, and no option means anything with them
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        allow_inf_nan=False,
    )


# --- option validation: messages that name the file and the dotted key path ----------

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


class Component(ABC):  # noqa: B024 (the kinds below declare the abstract methods)
    """What every component has: validated options, the folder relative paths resolve against,
    and a pre-flight check."""

    Options: ClassVar[type[Options]] = Options

    def __init__(self, options: Options | None = None, *, base_dir: Path | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()

    def resolve_path(self, path: str | Path) -> Path:
        """A path from the options, relative to the pipeline file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def plan(self) -> list[str]:
        """Pre-flight: check what can be checked before any work and return lines for the plan.

        Raise :class:`qslm.errors.ConfigError` (naming the option) for a mistake the user can
        fix. Must not import torch or other heavy libraries for built-in components.
        """
        return []


@dataclass
class Dataset:
    """Records from a data source, split deterministically into train and validation.

    A record is a dict with at least ``"text"``; instruction records may add ``instruction``,
    ``input`` and ``output``.
    """

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    sha256: str
    info: dict[str, Any] = field(default_factory=dict)


class DataSource(Component):
    """Turns files or datasets into training records (``[data]``); checked by
    :class:`qslm.testing.DataSourceConformance`."""

    @abstractmethod
    def load(self, ctx: RunContext) -> Dataset:
        """Read the records, split them with ``ctx.seed`` (the same inputs and seed give the
        same split) and hash the content (file names and bytes, not absolute paths)."""


@dataclass
class Artifact:
    """What a trainer leaves in the build: where the model and tokenizer are (relative to the
    build directory), and how to make the untrained reference model for comparison."""

    model_dir: str
    tokenizer_dir: str
    kind: str = "full"  # "full" weights, or "adapter" on top of base_model
    base_model: str | None = None
    reference: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class AttentionBackend(Component):
    """An attention function with the Hugging Face signature:
    ``(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs)``
    returning ``(attn_output, attn_weights)``, output shaped (batch, seq, heads, head_dim)."""

    mask_interface: ClassVar[str] = "eager"
    """The mask the function receives: "eager" (an additive float mask, always built) or
    "sdpa" (a boolean mask, or None for a plain causal batch)."""

    @abstractmethod
    def function(self) -> Callable[..., Any]:
        """The attention function, installed into models by ``qslm.attention.hf.install``."""


class Trainer(Component):
    """Turns records into a model in the build folder (``[train]``); checked by
    :class:`qslm.testing.TrainerConformance`."""

    supports_module_selection: ClassVar[bool] = False
    """Whether ``[train.select_modules]`` may be used with this trainer: it trains LoRA
    modules and adds ``qslm.train.module_select.callback_for`` to its Trainer's callbacks."""

    @abstractmethod
    def train(self, ctx: RunContext, data: Dataset, attention: AttentionBackend) -> Artifact:
        """Train on ``data.train`` (after ``[select]``: the chosen subset) with ``attention``
        installed, save safetensors weights and the tokenizer under ``ctx.build_dir``, keep
        resumable checkpoints under ``ctx.checkpoint_dir`` and start from
        ``ctx.resume_checkpoint()``; return where they are."""

    def estimate(self) -> Estimate | None:
        """Memory and disk the training will need, checked by ``qslm validate`` and ``run``
        before anything is allocated; None when the trainer cannot tell."""
        return None


class Evaluator(Component):
    """Measures a trained model and returns named metrics (``[evaluate.NAME]``); checked by
    :class:`qslm.testing.EvaluatorConformance`."""

    @abstractmethod
    def evaluate(self, ctx: RunContext, artifact: Artifact, data: Dataset) -> dict[str, float]:
        """Metrics of the model at ``ctx.build_dir / artifact.model_dir``: names of letters,
        digits and ``_ . - /``, values finite ints or floats. ``data`` is what training saw
        (``data.train`` is the ``[select]`` subset when there is one). Write files only under
        ``ctx.build_dir``."""
