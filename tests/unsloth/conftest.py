"""A pipeline folder with a tiny local Llama base model, and a way to run ``qslm`` on it.

Every run is a fresh ``qslm`` process: Unsloth patches transformers when it is imported, so
each run must start clean for the import order (and what Unsloth decides at import, such as
its CPU fallback) to be what a user gets.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

PIPELINE = """
[pipeline]
name = "tiny-unsloth"
seed = 3

[data]
source = "text"

[data.options]
paths = ["notes.txt"]

[train]
trainer = "unsloth"

[train.options]
base_model = "base"
dtype = "float32"
max_steps = 12
batch_size = 8
learning_rate = 1e-2
max_length = 64
logging_every = 4
threads = 1

[evaluate.perplexity]
"""

SUBJECTS = ["the cat", "a dog", "the bird", "my friend"]
VERBS = ["sees", "likes", "follows"]
OBJECTS = ["the ball", "a red house", "the old tree"]


def notes(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}." for _ in range(3)
        )
        for _ in range(n)
    ]


def save_tiny_llama(folder: Path, texts: list[str]) -> None:
    """An untrained 2-layer Llama (hidden size 32) and a byte-level BPE tokenizer."""
    import transformers
    from transformers import AutoModelForCausalLM, LlamaConfig

    from qslm.train.scratch import train_tokenizer

    tok = train_tokenizer(texts, 300, 2, 64)
    eos = tok.eos_token_id
    transformers.set_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tok.save_pretrained(folder)


def qslm(root: Path, *args: str, env: dict[str, str] | None = None):
    """``qslm ARGS`` in a fresh interpreter, offline, in ``root``."""
    return subprocess.run(
        [sys.executable, "-c", "from qslm.cli import main; main()", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        timeout=600,
    )


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Path:
    """``pipeline.toml``, ``notes.txt`` and ``base/`` (the tiny model) in a fresh folder. The
    base is saved in a subprocess, so this test process never imports transformers."""
    root = tmp_path_factory.mktemp("unsloth")
    texts = notes(120, 0)
    (root / "notes.txt").write_text("\n\n".join(texts))
    (root / "pipeline.toml").write_text(PIPELINE)
    code = (
        "import sys; from pathlib import Path\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from conftest import notes, save_tiny_llama\n"
        "save_tiny_llama(Path(sys.argv[2]), notes(120, 0))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), str(root / "base")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return root
