"""Held-out perplexity: the computation itself, and trained against untrained after a tiny run."""

from __future__ import annotations

import math

import pytest

from qslm.components import Artifact, Dataset
from qslm.errors import QslmError
from qslm.evaluate.perplexity import Perplexity


def test_training_lowers_held_out_perplexity(tiny_build, synthetic_data, make_ctx):
    build, artifact, _ = tiny_build
    lines: list[str] = []
    result = Perplexity().evaluate(make_ctx(build, lines.append), artifact, synthetic_data)
    assert set(result) == {"perplexity", "perplexity_untrained", "perplexity_ratio", "eval_tokens"}
    assert result["perplexity_ratio"] == pytest.approx(
        result["perplexity_untrained"] / result["perplexity"]
    )
    assert result["perplexity_ratio"] > 3
    # A random initialisation predicts about uniformly over the vocabulary.
    vocab = artifact.metrics["vocab_size"]
    assert 0.5 * vocab < result["perplexity_untrained"] < 2 * vocab
    assert not any("warning" in line for line in lines)  # the initial model was rebuilt exactly


def test_perplexity_is_exp_of_the_token_weighted_mean_nll(tiny_build, synthetic_data, make_ctx):
    """Compare with a direct computation over one long sequence cut into the same blocks."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    build, artifact, _ = tiny_build
    data = synthetic_data
    evaluator = Perplexity(Perplexity.Options(batch_size=3))
    result = evaluator.evaluate(make_ctx(build), artifact, data)

    tok = AutoTokenizer.from_pretrained(build / "model")
    model = AutoModelForCausalLM.from_pretrained(build / "model").eval()
    eos = tok.eos_token_id
    ids = [eos]
    for record in data.validation:
        ids += tok(record["text"], add_special_tokens=False)["input_ids"] + [eos]
    length = model.config.max_position_embeddings
    nll, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids), length):
            block = torch.tensor([ids[start : start + length]])
            if block.shape[1] < 2:
                continue
            loss = model(input_ids=block, labels=block).loss.item()  # mean over the block
            nll += loss * (block.shape[1] - 1)
            n += block.shape[1] - 1
    assert result["eval_tokens"] == n
    assert result["perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-4)


def test_max_tokens_limits_the_evaluated_tokens(tiny_build, synthetic_data, make_ctx):
    build, artifact, _ = tiny_build
    result = Perplexity(Perplexity.Options(max_tokens=50)).evaluate(
        make_ctx(build), artifact, synthetic_data
    )
    assert result["eval_tokens"] == 49  # 50 tokens, the first of each block is not predicted


def test_empty_validation_is_a_clear_error(tiny_build, synthetic_data, make_ctx):
    build, artifact, _ = tiny_build
    data = Dataset(train=synthetic_data.train, validation=[], sha256="x")
    with pytest.raises(QslmError, match="validation data has no text"):
        Perplexity().evaluate(make_ctx(build), artifact, data)


def test_unknown_reference_is_a_clear_error(tiny_build, synthetic_data, make_ctx):
    build = tiny_build[0]
    odd = Artifact(model_dir="model", tokenizer_dir="model", reference={"type": "magic"})
    with pytest.raises(QslmError, match="reference"):
        Perplexity().evaluate(make_ctx(build), odd, synthetic_data)
