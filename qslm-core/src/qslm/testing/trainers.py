"""Conformance kit for trainers: the artifact loads with plain transformers (or peft), holds
safetensors only, and ``qslm run --resume`` continues from the checkpoint.

Inherit :class:`TrainerConformance` in a ``Test*`` class, set :attr:`trainer` and
:attr:`trainer_options` (a run of a few steps), and :attr:`checkpoint_options` (the options
that save a checkpoint at the last step and keep it; None skips the resume check).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar

from qslm.components import Artifact, AttentionBackend, Dataset, Trainer
from qslm.testing.evaluators import tiny_dataset
from qslm.testing.kit import Target, make_component, make_context

PICKLES = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.ckpt")


def check_artifact(artifact: Any, build_dir: Path, who: str = "the trainer") -> None:
    """An :class:`Artifact` whose folders lie inside the build, hold safetensors weights and
    no pickle, and load with plain transformers (an adapter with peft) and produce logits."""
    assert isinstance(artifact, Artifact), f"{who}: train() returned {type(artifact).__name__}"
    build = Path(build_dir).resolve()
    folders = {}
    for field in ("model_dir", "tokenizer_dir"):
        rel = getattr(artifact, field)
        assert isinstance(rel, str) and not Path(rel).is_absolute(), (
            f"{who}: artifact.{field} must be a path relative to the build folder, got {rel!r}"
        )
        folder = (build / rel).resolve()
        assert build in folder.parents or folder == build, f"{who}: {field} leaves the build"
        assert folder.is_dir(), f"{who}: artifact.{field} {rel!r} is not a folder in the build"
        folders[field] = folder
    model = folders["model_dir"]
    assert list(model.glob("*.safetensors")), f"{who}: no *.safetensors weights in {model}"
    pickles = [p.name for pattern in PICKLES for p in model.glob(pattern)]
    assert not pickles, f"{who}: pickle files in the model folder: {pickles} (safetensors only)"
    assert artifact.kind in ("full", "adapter"), f"{who}: artifact.kind {artifact.kind!r}"
    assert artifact.kind == "full" or artifact.base_model, f"{who}: an adapter names no base"
    _forward(artifact, folders["model_dir"], folders["tokenizer_dir"], who)


def _forward(artifact: Artifact, model_dir: Path, tokenizer_dir: Path, who: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if artifact.kind == "adapter":
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(model_dir)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = tokenizer("a short test sentence", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape[:2] == ids.shape and logits.shape[-1] >= len(tokenizer) - 1, (
        f"{who}: logits of shape {tuple(logits.shape)} for {tuple(ids.shape)} tokens and a "
        f"vocabulary of {len(tokenizer)}"
    )
    assert torch.isfinite(logits).all(), f"{who}: the loaded model gives non-finite logits"


def weights(folder: Path) -> dict[str, Any]:
    """Every tensor of the safetensors files in ``folder``, by name."""
    from safetensors.torch import load_file

    out: dict[str, Any] = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        out.update(load_file(path))
    return out


def shift_checkpoint(checkpoint: Path, delta: float = 0.125) -> None:
    """Add ``delta`` to every floating-point tensor of the checkpoint's weights, so that a
    model resumed from it can be told apart from one trained again from the start."""
    from safetensors.torch import load_file, save_file

    for path in Path(checkpoint).glob("*.safetensors"):
        tensors = {k: v + delta if v.is_floating_point() else v for k, v in load_file(path).items()}
        save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata={"format": "pt"})


def check_resumed(checkpoint_weights: dict[str, Any], artifact_dir: Path, who: str) -> None:
    """The final weights are the checkpoint's: training resumed at its last step went on from
    the checkpoint instead of starting again."""
    import torch

    final = weights(artifact_dir)
    common = sorted(checkpoint_weights.keys() & final.keys())
    assert common, f"{who}: the checkpoint and the model share no tensor name"
    differ = [k for k in common if not torch.allclose(final[k], checkpoint_weights[k])]
    assert not differ, (
        f"{who}: with ctx.resume set, the model is not the checkpoint's ({len(differ)} of "
        f"{len(common)} tensors differ, e.g. {differ[0]}); pass ctx.resume_checkpoint() to "
        "the Trainer's train(resume_from_checkpoint=...)"
    )


class TrainerConformance:
    """Every ``test_*`` method trains with :attr:`trainer_options` on a tiny dataset."""

    trainer: ClassVar[Target | None] = None
    trainer_options: ClassVar[dict[str, Any]] = {}
    checkpoint_options: ClassVar[dict[str, Any] | None] = None
    """Options that save a checkpoint at the final step and keep it (None: no resume test)."""
    attention: ClassVar[str] = "exact"

    def make_dataset(self) -> Dataset:
        return tiny_dataset()

    def train(self, build: Path, options: dict[str, Any], *, resume: bool = False) -> Artifact:
        if self.trainer is None:
            raise TypeError(f"{type(self).__name__}: set `trainer = ...` on the class")
        trainer = make_component(self.trainer, Trainer, options)
        ctx = make_context(build, resume=resume, progress=lambda line: None)
        attention = make_component(self.attention, AttentionBackend)
        return trainer.train(ctx, self.make_dataset(), attention)

    def test_artifact_loads(self, tmp_path: Path) -> None:
        artifact = self.train(tmp_path / "build", self.trainer_options)
        check_artifact(artifact, tmp_path / "build", f"trainer {self.trainer!r}")

    def test_resume_continues_from_the_checkpoint(self, tmp_path: Path) -> None:
        if self.checkpoint_options is None:
            import pytest

            pytest.skip("checkpoint_options = None")
        who = f"trainer {self.trainer!r}"
        options = {**self.trainer_options, **self.checkpoint_options}
        first = tmp_path / "first"
        self.train(first, options)
        saved = sorted((first / "checkpoints").glob("checkpoint-*"))
        assert saved, f"{who}: no checkpoint-<step> folder under ctx.checkpoint_dir"
        resumed = tmp_path / "resumed"
        shutil.copytree(saved[-1], resumed / "checkpoints" / saved[-1].name)
        shift_checkpoint(resumed / "checkpoints" / saved[-1].name)
        expected = weights(resumed / "checkpoints" / saved[-1].name)
        artifact = self.train(resumed, options, resume=True)
        check_resumed(expected, resumed / artifact.model_dir, who)
