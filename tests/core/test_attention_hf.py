"""Every built-in backend inside a Hugging Face causal LM: forward with padding, a training
step, generation, and a from-scratch training run with the sampled backend."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from test_attention_exact import tiny_llama  # noqa: E402

from qslm.attention.exact import ExactAttention  # noqa: E402
from qslm.attention.hf import install  # noqa: E402
from qslm.attention.mps import MpsAttention  # noqa: E402
from qslm.attention.sampled import SampledAttention  # noqa: E402

STRATEGIES = ["naive", "stratified", "hybrid", "control_variate", "adaptive"]


def make_backend(label):
    if label == "exact":
        return ExactAttention()
    if label == "mps":
        return MpsAttention(MpsAttention.Options(samples=8, max_bond=2))
    if label == "noisy":
        return SampledAttention(
            SampledAttention.Options(noise="depolarizing", noise_strength=0.2, samples=8)
        )
    return SampledAttention(SampledAttention.Options(strategy=label, samples=8))


@pytest.mark.parametrize("label", ["exact", *STRATEGIES, "noisy", "mps"])
def test_backend_trains_and_generates_in_a_llama(label):
    backend = make_backend(label)
    model = tiny_llama(install(backend))
    ids = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    model.train()
    out = model(ids, attention_mask=mask, labels=ids)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "q_proj" in n]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)  # scores get gradients
    model.eval()
    with torch.no_grad():
        gen = model.generate(
            ids[:1, :4], max_new_tokens=5, min_new_tokens=5, do_sample=False, pad_token_id=0
        )
    assert gen.shape == (1, 9)


def test_scratch_training_with_sampled_attention(tmp_path, make_ctx, synthetic_data):
    from conftest import TINY

    from qslm.train.scratch import ScratchTrainer

    options = dict(TINY, max_steps=8, logging_every=4)
    backend = SampledAttention(SampledAttention.Options(strategy="hybrid", samples=8))
    artifact = ScratchTrainer(ScratchTrainer.Options(**options)).train(
        make_ctx(tmp_path), synthetic_data, backend
    )
    assert (tmp_path / artifact.model_dir).exists()
    assert all(v == v for v in artifact.metrics.values())  # no NaN
