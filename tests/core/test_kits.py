"""The conformance kits for data sources, evaluators, trainers and attention backends pass on
the built-ins, and each check fails on a component broken in the way it guards against."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from qslm.components import Artifact, Dataset, DataSource, Evaluator
from qslm.testing import (
    AttentionConformance,
    DataSourceConformance,
    EvaluatorConformance,
    TrainerConformance,
)
from qslm.testing.evaluators import TINY_SCRATCH
from qslm.testing.kit import make_context

torch = pytest.importorskip("torch")
PARAGRAPHS = "\n\n".join(f"Paragraph {i} about annealing schedule {i % 7}." for i in range(30))


# ---- the built-ins pass -------------------------------------------------------------------


class TestTextSource(DataSourceConformance):
    source = "text"

    def write_inputs(self, folder, variant):
        (folder / "notes.md").write_text(PARAGRAPHS + f"\n\nVariant {variant}.\n")
        return {"paths": ["notes.md"]}


class TestJsonlSource(DataSourceConformance):
    source = "jsonl"

    def write_inputs(self, folder, variant):
        rows = [{"instruction": f"Q{i}?", "output": f"A{i + variant}."} for i in range(20)]
        (folder / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
        return {"paths": ["qa.jsonl"]}


class TestHfSource(DataSourceConformance):
    source = "hf"

    def write_inputs(self, folder, variant):
        pytest.importorskip("datasets")
        rows = [{"text": f"Row {i} of version {variant}."} for i in range(30)]
        (folder / "rows.json").write_text("\n".join(json.dumps(r) for r in rows))
        return {"path": "rows.json"}


class TestDocumentsSource(DataSourceConformance):
    source = "documents"

    def write_inputs(self, folder, variant):
        body = "".join(f"<p>Paragraph {i} on solvers, version {variant}.</p>" for i in range(20))
        (folder / "page.html").write_text(f"<html><body>{body}</body></html>")
        return {"paths": ["page.html"]}


class TestPerplexityKit(EvaluatorConformance):
    evaluator = "perplexity"


class TestScratchKit(TrainerConformance):
    trainer = "scratch"
    trainer_options = TINY_SCRATCH  # the evaluator kit's tiny model, trained by the kit
    checkpoint_options = {"checkpoint_every": 2, "keep_checkpoint": True}


@pytest.mark.parametrize("name", ["exact", "sampled", "mps"])
def test_attention_kit_passes_on_the_builtins(name):
    class Kit(AttentionConformance):
        backend = name

    kit = Kit()
    for test in ("signature_and_shape", "mask_is_applied", "gradients_flow"):
        getattr(kit, f"test_{test}")()
    if name == "exact":
        kit.test_causal_without_a_mask()


# ---- each check fails on a component that breaks it -----------------------------------------


def _dataset(**changes):
    data = {"train": [{"text": "a"}], "validation": [], "sha256": "0" * 64, "info": {}}
    return Dataset(**{**data, **changes})


@pytest.mark.parametrize(
    "data, message",
    [
        (_dataset(train=[]), "no training records"),
        (_dataset(train=[{"body": "a"}]), 'no non-blank "text"'),
        (_dataset(train=[{"text": "a", "when": {1, 2}}]), "JSON-serialisable"),
        (_dataset(sha256="abc"), "64 lowercase hex"),
        (_dataset(info={"n": (1, 2)}), "changes through JSON"),
    ],
)
def test_check_dataset_fails(data, message):
    from qslm.testing.data_sources import check_dataset

    with pytest.raises(AssertionError, match=message):
        check_dataset(data)


class _Lines(DataSource):
    """Lines of the files named in ``paths``; the subclasses break one rule each."""

    from qslm.components import Options as _O

    class Options(_O):
        paths: list[str]

    def records(self):
        return [
            {"text": line}
            for p in self.options.paths
            for line in self.resolve_path(p).read_text().splitlines()
        ]

    def digest(self):
        import hashlib

        return hashlib.sha256(
            b"".join(self.resolve_path(p).read_bytes() for p in self.options.paths)
        ).hexdigest()

    def load(self, ctx):
        return Dataset(train=self.records(), validation=[], sha256=self.digest())


class _Unseeded(_Lines):
    def load(self, ctx):
        records = self.records()
        random.shuffle(records)  # the global random state: not reproducible
        return Dataset(train=records, validation=[], sha256=self.digest())


class _PathHash(_Lines):
    def digest(self):
        import hashlib

        return hashlib.sha256(str(self.resolve_path(self.options.paths[0])).encode()).hexdigest()


class _ConstantHash(_Lines):
    def digest(self):
        return "1" * 64


class _LinesKit(DataSourceConformance):
    def write_inputs(self, folder, variant):
        (folder / "a.txt").write_text("\n".join(f"line {i} {variant}" for i in range(50)))
        return {"paths": ["a.txt"]}


@pytest.mark.parametrize(
    "source, test, message",
    [
        (_Unseeded, "test_split_is_deterministic", "different training records"),
        (_PathHash, "test_hash_follows_content", "in another folder hashed differently"),
        (_ConstantHash, "test_hash_follows_content", "kept the same sha256"),
    ],
)
def test_data_source_kit_fails(source, test, message, tmp_path):
    kit = type("Kit", (_LinesKit,), {"source": source})()
    kit.test_records(tmp_path / "ok")  # the records themselves are fine
    with pytest.raises(AssertionError, match=message):
        getattr(kit, test)(tmp_path)


@pytest.mark.parametrize(
    "metrics, message",
    [
        ({}, "no metric"),
        ({"word count": 3}, "must be letters"),
        ({"words": "3"}, "is '3'"),
        ({"ok": True}, "is True"),
        ({"ratio": float("nan")}, "is nan"),
        ({"n": None}, "is None"),
    ],
)
def test_check_metrics_fails(metrics, message):
    from qslm.testing.evaluators import check_metrics

    with pytest.raises(AssertionError, match=message):
        check_metrics(metrics)


class _Count(Evaluator):
    def evaluate(self, ctx, artifact, data):
        return {"records": len(data.validation)}


class _WritesHere(_Count):
    def evaluate(self, ctx, artifact, data):
        Path("answers.jsonl").write_text("{}")  # the working folder, not the build
        return super().evaluate(ctx, artifact, data)


class _WritesBeside(_Count):
    def evaluate(self, ctx, artifact, data):
        (self.base_dir / "cache.json").write_text("{}")  # the pipeline's folder
        return super().evaluate(ctx, artifact, data)


class _Mutates(_Count):
    def evaluate(self, ctx, artifact, data):
        data.validation[0]["text"] = data.validation[0]["text"].upper()
        return super().evaluate(ctx, artifact, data)


def test_evaluator_kit_passes_on_a_model_free_evaluator(tmp_path):
    kit = type("Kit", (EvaluatorConformance,), {"evaluator": _Count, "needs_model": False})()
    kit.test_metrics(tmp_path)


@pytest.mark.parametrize(
    "evaluator, message",
    [
        (_WritesHere, r"wrote outside the build folder: \['cwd/answers.jsonl'\]"),
        (_WritesBeside, r"wrote outside the build folder: \['pipeline/cache.json'\]"),
        (_Mutates, "changed the records"),
    ],
)
def test_evaluator_kit_fails(evaluator, message, tmp_path):
    kit = type("Kit", (EvaluatorConformance,), {"evaluator": evaluator, "needs_model": False})()
    with pytest.raises(AssertionError, match=message):
        kit.test_metrics(tmp_path)


@pytest.fixture(scope="module")
def scratch_build(tmp_path_factory):
    build = tmp_path_factory.mktemp("kit-build")
    kit = TestScratchKit()
    artifact = kit.train(build, kit.trainer_options)
    return build, artifact


def _copy(build, tmp_path):
    import shutil

    shutil.copytree(build, tmp_path / "b")
    return tmp_path / "b"


def test_check_artifact_fails(scratch_build, tmp_path):
    from qslm.testing.trainers import check_artifact

    build, artifact = scratch_build
    check_artifact(artifact, build)
    cases = [
        (Artifact(model_dir=str(build / "model"), tokenizer_dir="model"), "relative"),
        (Artifact(model_dir="../elsewhere", tokenizer_dir="model"), "leaves the build"),
        (Artifact(model_dir="model", tokenizer_dir="model", kind="adapter"), "names no base"),
        (Artifact(model_dir="weights", tokenizer_dir="model"), "is not a folder in the build"),
    ]
    for bad, message in cases:
        with pytest.raises(AssertionError, match=message):
            check_artifact(bad, build)
    copy = _copy(build, tmp_path)
    for weights in (copy / artifact.model_dir).glob("*.safetensors"):
        weights.rename(weights.with_suffix(".moved"))
    with pytest.raises(AssertionError, match=r"no \*\.safetensors"):
        check_artifact(artifact, copy)
    for weights in (copy / artifact.model_dir).glob("*.moved"):
        weights.rename(weights.with_suffix(".safetensors"))
    torch.save({}, copy / artifact.model_dir / "pytorch_model.bin")
    with pytest.raises(AssertionError, match="pickle files"):
        check_artifact(artifact, copy)
    (copy / artifact.model_dir / "pytorch_model.bin").unlink()
    config = copy / artifact.model_dir / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "vocab_size": 7}))
    with pytest.raises(Exception):  # noqa: B017 (transformers refuses the shapes)
        check_artifact(artifact, copy)


def test_trainer_kit_fails_when_resume_is_ignored(tmp_path):
    from qslm.train.scratch import ScratchTrainer

    class Forgets(ScratchTrainer):
        def train(self, ctx, data, attention):
            ctx.resume = False  # trains again from step 0
            return super().train(ctx, data, attention)

    kit = type("Kit", (TestScratchKit,), {"trainer": Forgets})()
    with pytest.raises(AssertionError, match="is not the checkpoint's"):
        kit.test_resume_continues_from_the_checkpoint(tmp_path)


def _backend(function, interface="eager"):
    from qslm.components import AttentionBackend

    class Broken(AttentionBackend):
        mask_interface = interface

        def function(self):
            return function

    return Broken


def _exact(module, q, k, v, mask, scaling=None, dropout=0.0, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, q, k, v, mask, scaling=scaling, dropout=dropout)


def _no_kwargs(module, q, k, v, mask, scaling=None, dropout=0.0):
    return _exact(module, q, k, v, mask, scaling=scaling)


def _heads_first(module, q, k, v, mask, **kwargs):
    out, w = _exact(module, q, k, v, mask, **kwargs)
    return out.transpose(1, 2), w


def _no_mask(module, q, k, v, mask, **kwargs):
    return _exact(_non_causal(module), q, k, v, None, **kwargs)


def _non_causal(module):
    module.is_causal = False
    return module


def _causal_only_with_mask(module, q, k, v, mask, **kwargs):
    return _exact(_non_causal(module), q, k, v, mask, **kwargs)


def _detached(module, q, k, v, mask, **kwargs):
    out, w = _exact(module, q.detach(), k, v, mask, **kwargs)
    return out, w


@pytest.mark.parametrize(
    "function, interface, test, message",
    [
        (_no_kwargs, "sdpa", "signature_and_shape", r"\*\*kwargs"),
        (_heads_first, "sdpa", "signature_and_shape", "must be \\(batch, seq, heads"),
        (_no_mask, "sdpa", "mask_is_applied", "mask hides changed the output"),
        (_no_mask, "eager", "mask_is_applied", "mask hides changed the output"),
        (_causal_only_with_mask, "sdpa", "causal_without_a_mask", "mask hides changed"),
        (_detached, "sdpa", "gradients_flow", "no finite, non-zero gradient"),
    ],
)
def test_attention_kit_fails(function, interface, test, message):
    kit = type("Kit", (AttentionConformance,), {"backend": _backend(function, interface)})()
    with pytest.raises(AssertionError, match=message):
        getattr(kit, f"test_{test}")()


def test_make_context_needs_no_pipeline(tmp_path):
    ctx = make_context(tmp_path / "b", seed=3)
    assert ctx.build_dir.is_dir() and ctx.seed == 3 and ctx.config is None
