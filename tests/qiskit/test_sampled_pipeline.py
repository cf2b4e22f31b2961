"""qiskit.sampled chosen in pipeline.toml: a tiny scratch model trains a few steps with it, the
attention-error evaluator measures it, validate shows its plan, and a context longer than
max_keys stops the run with a message naming the option."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from qslm.cli import cli

pytest.importorskip("torch")

PIPELINE = """
[pipeline]
name = "qiskit-sampled"
seed = 3

[data]
source = "text"
[data.options]
paths = ["corpus.txt"]

[attention]
backend = "qiskit.sampled"
[attention.options]
shots = 16
max_keys = 32

[train]
trainer = "scratch"
[train.options]
vocab_size = 300
hidden_size = 32
heads = 4
kv_heads = 2
context_length = 32
batch_size = 4
max_steps = 3
threads = 2

[evaluate.attention-error]
max_tokens = 128
batch_size = 4
"""


def corpus(n: int = 200) -> str:
    rng = random.Random(0)
    words = ["the cat", "a dog", "sees", "likes", "the ball", "a red house", "the river"]
    return "\n\n".join(" ".join(rng.choice(words) for _ in range(8)) + "." for _ in range(n))


@pytest.fixture
def project(tmp_path: Path, clean_env) -> Path:
    (tmp_path / "corpus.txt").write_text(corpus())
    (tmp_path / "pipeline.toml").write_text(PIPELINE)
    return tmp_path


def test_pipeline_trains_and_is_measured_with_qiskit_sampled(project: Path):
    runner = CliRunner()
    validated = runner.invoke(cli, ["validate", str(project / "pipeline.toml")])
    assert validated.exit_code == 0, validated.output
    assert "qiskit.sampled attention: 16 shots per row on Aer" in validated.output

    out = project / "out"
    result = runner.invoke(cli, ["run", str(project / "pipeline.toml"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    build = Path(result.output.strip().splitlines()[-1])
    metrics = json.loads((build / "metrics.json").read_text())
    flat = {
        k: v
        for section in metrics.values()
        if isinstance(section, dict)
        for k, v in section.items()
    }
    flat.update({k: v for k, v in metrics.items() if not isinstance(v, dict)})
    # 16 shots per row: a real, bounded error (naive sampling's is sqrt((N_eff - 1) / k)).
    for layer in (0, 1):
        assert 0.01 < flat[f"attention_rel_error_layer_{layer}"] < 1.0, flat
    assert flat["perplexity_backend"] > 1.0 and flat["perplexity_exact"] > 1.0


def test_context_longer_than_max_keys_stops_the_run_naming_the_option(project: Path):
    (project / "pipeline.toml").write_text(PIPELINE.replace("max_keys = 32", "max_keys = 16"))
    result = CliRunner().invoke(
        cli, ["run", str(project / "pipeline.toml"), "--output", str(project / "out")]
    )
    assert result.exit_code == 1, result.output
    assert "max_keys" in result.output and "Traceback" not in result.output
