"""Fixtures of the training and evaluation tests: a tiny model trained once per session."""

from __future__ import annotations

import random

import pytest

from qslm.components import Dataset
from qslm.context import RunContext

TINY = dict(
    vocab_size=300,
    layers=2,
    hidden_size=32,
    heads=4,
    kv_heads=2,
    context_length=32,
    batch_size=8,
    learning_rate=1e-2,
    max_steps=40,
    logging_every=5,
    dropout=0.0,
    threads=2,
)

SUBJECTS = ["the cat", "a dog", "the bird", "my friend", "the teacher", "our neighbour"]
VERBS = ["sees", "likes", "follows", "draws", "finds", "calls"]
OBJECTS = ["the ball", "a red house", "the old tree", "some bread", "the river", "a small boat"]


def synthetic_texts(n: int, seed: int) -> list[str]:
    """Short sentences from a tiny grammar: easy to learn, so training must lower the loss."""
    rng = random.Random(seed)
    return [
        " ".join(
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
            for _ in range(rng.randint(1, 3))
        )
        for _ in range(n)
    ]


def make_synthetic_data() -> Dataset:
    return Dataset(
        train=[{"text": t} for t in synthetic_texts(300, 0)],
        validation=[{"text": t} for t in synthetic_texts(40, 1)],
        sha256="x",
    )


def make_context(path, progress=None) -> RunContext:
    kwargs = {"progress": progress} if progress else {}
    return RunContext(config=None, registry=None, build_dir=path, seed=0, **kwargs)


@pytest.fixture
def tiny_options() -> dict:
    """Options of the scratch trainer for a model that trains in a few seconds."""
    return dict(TINY)


@pytest.fixture
def synthetic_data() -> Dataset:
    return make_synthetic_data()


@pytest.fixture
def make_ctx():
    """``make_ctx(build_dir, progress=None)``: a run context outside a pipeline."""
    return make_context


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory):
    """One tiny training run (with checkpoints) shared by the tests: (build, artifact, lines)."""
    pytest.importorskip("torch")
    from qslm.attention.exact import ExactAttention
    from qslm.train.scratch import ScratchTrainer

    build = tmp_path_factory.mktemp("build")
    lines: list[str] = []
    trainer = ScratchTrainer(ScratchTrainer.Options(**TINY, checkpoint_every=20))
    artifact = trainer.train(
        make_context(build, lines.append), make_synthetic_data(), ExactAttention()
    )
    return build, artifact, lines


def save_tiny_build(root, name: str = "tiny", context_length: int = 256):
    """A build folder ``root/name/v1`` (manifest, model, tokenizer) of an untrained tiny Llama:
    what the inference and serving tests load, without a training run."""
    import json

    import transformers
    from transformers import AutoModelForCausalLM, LlamaConfig

    from qslm.train.scratch import train_tokenizer

    build = root / name / "v1"
    (build / "model").mkdir(parents=True)
    tok = train_tokenizer(synthetic_texts(200, 0), 300, 2, context_length)
    eos = tok.eos_token_id
    transformers.set_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context_length,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(build / "model")
    tok.save_pretrained(build / "model")
    manifest = {
        "name": name,
        "version": "v1",
        "artifact": {"model_dir": "model", "tokenizer_dir": "model", "kind": "full"},
    }
    (build / "manifest.json").write_text(json.dumps(manifest))
    return build


@pytest.fixture(scope="session")
def tiny_model_build(tmp_path_factory):
    """``builds/tiny/v1``: an untrained tiny model as a build (see :func:`save_tiny_build`)."""
    pytest.importorskip("torch")
    return save_tiny_build(tmp_path_factory.mktemp("builds"))
