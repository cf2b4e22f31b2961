"""The attention-error evaluator on the tiny trained model."""

from __future__ import annotations

import pytest

from qslm.evaluate.attention_error import AttentionError


def test_exact_backend_has_no_error(tiny_build, make_ctx, synthetic_data):
    build, artifact, _ = tiny_build
    ev = AttentionError(AttentionError.Options(backend="exact", max_tokens=256))
    m = ev.evaluate(make_ctx(build), artifact, synthetic_data)
    assert m["attention_rel_error_layer_0"] == pytest.approx(0, abs=1e-5)
    assert m["perplexity_change"] == pytest.approx(0, abs=1e-4)


def test_sampled_backend_error_per_layer_and_perplexity(tiny_build, make_ctx, synthetic_data):
    build, artifact, _ = tiny_build
    ev = AttentionError(
        AttentionError.Options(backend="sampled", backend_options={"samples": 2}, max_tokens=256)
    )
    m = ev.evaluate(make_ctx(build), artifact, synthetic_data)
    assert set(m) >= {"attention_rel_error_layer_0", "attention_rel_error_layer_1"}
    assert 0.05 < m["attention_rel_error_mean"] < 5
    assert m["perplexity_backend"] > 0 and m["eval_tokens"] > 0
