"""Conformance kit for evaluators: named numeric metrics, records left as they were, and no
file written outside the build folder.

Inherit :class:`EvaluatorConformance` in a ``Test*`` class and set :attr:`evaluator`. By
default the evaluator is given a tiny from-scratch model trained for two steps (torch and
transformers needed); override :meth:`make_artifact` to give it another, or set
``needs_model = False`` for an evaluator that does not read the model.
"""

from __future__ import annotations

import copy
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from qslm.components import Artifact, Dataset, Evaluator
from qslm.testing.kit import (
    Target,
    changed,
    is_metric_value,
    make_component,
    make_context,
    snapshot,
)

# What trackers accept as a key (MLflow's rule, the strictest of them) and what the report
# shows: letters, digits, underscore, dash, dot, slash.
METRIC_NAME = re.compile(r"^[A-Za-z0-9_.\-/]+$")


def check_metrics(metrics: Any, who: str = "the evaluator") -> None:
    """A non-empty dict of metric name (letters, digits, ``_ . - /``) to a finite int or
    float (not a bool, not None, not a string)."""
    assert isinstance(metrics, dict), f"{who}: evaluate() returned {type(metrics).__name__}"
    assert metrics, f"{who}: returned no metric"
    for name, value in metrics.items():
        assert isinstance(name, str) and METRIC_NAME.match(name), (
            f"{who}: metric name {name!r} must be letters, digits, '_', '.', '-' or '/'"
        )
        assert is_metric_value(value), (
            f"{who}: metric {name!r} is {value!r} ({type(value).__name__}); metrics are finite "
            "int or float values (convert numpy and torch scalars with float())"
        )


def tiny_records(n: int = 40, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` short English text records (a fixed vocabulary, varied by ``seed``)."""
    import random

    rng = random.Random(seed)
    words = ["the", "model", "reads", "short", "notes", "about", "solvers", "graphs"]
    words += ["energy", "samples", "and", "plots"]
    return [{"text": " ".join(rng.choice(words) for _ in range(12)) + "."} for _ in range(n)]


def tiny_dataset(n: int = 40, seed: int = 0) -> Dataset:
    """A dataset of :func:`tiny_records`, three quarters for training."""
    import hashlib

    records = tiny_records(n, seed)
    cut = n * 3 // 4
    digest = hashlib.sha256(repr(records).encode()).hexdigest()
    return Dataset(train=records[:cut], validation=records[cut:], sha256=digest)


def tiny_artifact(build_dir: Path, data: Dataset, *, seed: int = 0) -> Artifact:
    """A from-scratch model trained for two steps into ``build_dir`` (a few seconds on a CPU)."""
    from qslm.components import AttentionBackend, Trainer

    ctx = make_context(build_dir, seed=seed, progress=lambda line: None)
    trainer = make_component("scratch", Trainer, TINY_SCRATCH)
    return trainer.train(ctx, data, make_component("exact", AttentionBackend))


TINY_SCRATCH = {
    "vocab_size": 300,
    "hidden_size": 32,
    "heads": 2,
    "layers": 1,
    "context_length": 32,
    "batch_size": 4,
    "max_steps": 2,
    "threads": 1,
}


@contextmanager
def _cwd(path: Path) -> Any:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


class EvaluatorConformance:
    """Every ``test_*`` method runs the evaluator once on :meth:`make_artifact`'s model."""

    evaluator: ClassVar[Target | None] = None
    """Registered name, Evaluator subclass or zero-argument factory."""
    evaluator_options: ClassVar[dict[str, Any]] = {}
    needs_model: ClassVar[bool] = True
    """False: the evaluator gets an artifact whose model folder is empty."""

    def make_dataset(self) -> Dataset:
        return tiny_dataset()

    def make_artifact(self, build_dir: Path, data: Dataset) -> Artifact:
        if not self.needs_model:
            (build_dir / "model").mkdir(parents=True, exist_ok=True)
            return Artifact(model_dir="model", tokenizer_dir="model")
        return tiny_artifact(build_dir, data)

    def run(self, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """Evaluate in ``tmp_path/build`` from the empty working folder ``tmp_path/cwd``;
        returns the metrics and what the run changed (records, files outside the build)."""
        if self.evaluator is None:
            raise TypeError(f"{type(self).__name__}: set `evaluator = ...` on the class")
        build, cwd, base = tmp_path / "build", tmp_path / "cwd", tmp_path / "pipeline"
        for folder in (build, cwd, base):
            folder.mkdir(parents=True, exist_ok=True)
        data = self.make_dataset()
        artifact = self.make_artifact(build, data)
        evaluator = make_component(self.evaluator, Evaluator, self.evaluator_options, base_dir=base)
        records = copy.deepcopy((data.train, data.validation))
        before = snapshot(tmp_path, skip=(build,))
        with _cwd(cwd):
            metrics = evaluator.evaluate(make_context(build), artifact, data)
        effects = {
            "written_outside": changed(before, snapshot(tmp_path, skip=(build,))),
            "records_changed": records != (data.train, data.validation),
        }
        return metrics, effects

    def test_metrics(self, tmp_path: Path) -> None:
        metrics, effects = self.run(tmp_path)
        who = f"evaluator {self.evaluator!r}"
        check_metrics(metrics, who)
        check_effects(effects, who)


def check_effects(effects: dict[str, Any], who: str = "the evaluator") -> None:
    """No file written outside the build folder, and the records given left unchanged."""
    assert not effects["written_outside"], (
        f"{who}: wrote outside the build folder: {effects['written_outside']} (write under "
        "ctx.build_dir, e.g. ctx.path('my-evaluator', 'answers.jsonl'))"
    )
    assert not effects["records_changed"], (
        f"{who}: changed the records it was given (the next evaluator sees them too); copy "
        "them before editing"
    )
