"""A pipeline that trains with sampled attention chosen in pipeline.toml and measures it with the
attention-error evaluator; noise on a strategy that reads known masses is refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import synthetic_texts

from qslm.cli import cli

pytest.importorskip("torch")

PIPELINE = """
[pipeline]
name = "sampled"
seed = 3

[data]
source = "text"
[data.options]
paths = ["corpus.txt"]

[attention]
backend = "sampled"
[attention.options]
strategy = "hybrid"
samples = 8

[train]
trainer = "scratch"
[train.options]
vocab_size = 300
hidden_size = 32
heads = 4
kv_heads = 2
context_length = 32
batch_size = 8
max_steps = 6
threads = 2

[evaluate.attention-error]
max_tokens = 256
"""


def test_pipeline_trains_and_evaluates_with_sampled_attention(tmp_path: Path, clean_env):
    (tmp_path / "corpus.txt").write_text("\n\n".join(synthetic_texts(200, 0)))
    (tmp_path / "pipeline.toml").write_text(PIPELINE)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "pipeline.toml"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    build = Path(result.output.strip().splitlines()[-1])
    text = "\n".join(p.read_text() for p in build.glob("*.json"))
    assert "attention_rel_error_layer_1" in text and "perplexity_backend" in text


def test_noise_with_a_classical_strategy_is_a_config_error(tmp_path: Path, clean_env):
    (tmp_path / "corpus.txt").write_text("One.\n\nTwo.\n")
    (tmp_path / "pipeline.toml").write_text(
        PIPELINE.replace("samples = 8", 'samples = 8\nnoise = "depolarizing"\nnoise_strength = 0.1')
    )
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "pipeline.toml")])
    assert result.exit_code == 2 and "attention.options.noise" in result.output
