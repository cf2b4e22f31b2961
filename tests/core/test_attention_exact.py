"""Exact attention against a hand-written softmax(QK^T * scale + mask) V, alone and in a model."""

from __future__ import annotations

import math
import subprocess
import sys
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from qslm.attention.exact import ExactAttention  # noqa: E402
from qslm.attention.hf import implementation_name, install  # noqa: E402
from qslm.components import Options  # noqa: E402


def reference_attention(query, key, value, mask, scaling, causal):
    """softmax(Q K^T * scale + mask) V with K/V heads repeated for grouped-query attention."""
    groups = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    scores = query @ key.transpose(-1, -2) * scaling
    q_len, k_len = scores.shape[-2:]
    if causal:
        allowed = torch.ones(q_len, k_len, dtype=torch.bool).tril(k_len - q_len)
        scores = scores.masked_fill(~allowed, float("-inf"))
    if mask is not None:
        scores = (
            scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        )
    out = torch.softmax(scores, dim=-1) @ value
    return out.transpose(1, 2)  # (batch, seq, heads, head_dim)


def qkv(batch=2, heads=4, kv_heads=4, seq=7, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, seq, dim, generator=g, dtype=torch.float64)
    k = torch.randn(batch, kv_heads, seq, dim, generator=g, dtype=torch.float64)
    v = torch.randn(batch, kv_heads, seq, dim, generator=g, dtype=torch.float64)
    return q, k, v


def module(heads, kv_heads, causal=True):
    return SimpleNamespace(num_key_value_groups=heads // kv_heads, is_causal=causal, layer_idx=0)


@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
def test_causal_without_mask_matches_reference(kv_heads):
    q, k, v = qkv(kv_heads=kv_heads)
    fn = ExactAttention().function()
    out, weights = fn(module(4, kv_heads), q, k, v, None, scaling=0.3)
    expected = reference_attention(q, k, v, None, 0.3, causal=True)
    assert out.shape == (2, 7, 4, 8)
    assert weights is None
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_boolean_padding_and_causal_mask_matches_reference(kv_heads):
    q, k, v = qkv(kv_heads=kv_heads)
    causal = torch.ones(7, 7, dtype=torch.bool).tril()
    mask = causal.expand(2, 1, 7, 7).clone()
    mask[1, :, :, :2] = False  # left padding in the second sequence
    mask[1, :, :2, :2] = torch.eye(2, dtype=torch.bool)  # padded rows still attend somewhere
    out, _ = ExactAttention().function()(module(4, kv_heads), q, k, v, mask, scaling=None)
    expected = reference_attention(q, k, v, mask, 1 / math.sqrt(8), causal=False)
    torch.testing.assert_close(out, expected)


def test_additive_float_mask_matches_reference():
    q, k, v = qkv(heads=2, kv_heads=1)
    mask = torch.zeros(2, 1, 7, 7, dtype=torch.float64)
    mask = mask.masked_fill(~torch.ones(7, 7, dtype=torch.bool).tril(), torch.finfo(mask.dtype).min)
    mask[0, :, 3:, 1] = -2.5  # a soft bias, not only -inf
    out, _ = ExactAttention().function()(module(2, 1), q, k, v, mask, scaling=0.5)
    torch.testing.assert_close(out, reference_attention(q, k, v, mask, 0.5, causal=False))


def test_decoding_one_query_against_a_longer_cache():
    q, k, v = qkv(kv_heads=2)
    q = q[:, :, -1:, :]
    out, _ = ExactAttention().function()(module(4, 2), q, k, v, None, scaling=0.2)
    torch.testing.assert_close(out, reference_attention(q, k, v, None, 0.2, causal=True))


def tiny_llama(attn_implementation):
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation).eval()


def test_installed_backend_gives_the_eager_models_logits_with_padding():
    name = install(ExactAttention())
    assert name == "qslm_exact_attention"
    ours, eager = tiny_llama(name), tiny_llama("eager")
    eager.load_state_dict(ours.state_dict())
    assert ours.config._attn_implementation == name
    ids = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    with torch.no_grad():
        for attention_mask in (None, mask):
            a = ours(ids, attention_mask=attention_mask).logits
            b = eager(ids, attention_mask=attention_mask).logits
            keep = slice(None) if attention_mask is None else mask.bool()
            torch.testing.assert_close(a[keep], b[keep], atol=1e-5, rtol=1e-4)


def test_a_backend_that_names_no_mask_gets_a_materialised_additive_mask():
    """Sampled backends (later) rely on this: the mask arrives as floats, causal part included."""
    from qslm.components import AttentionBackend

    seen = []

    class Recording(AttentionBackend):
        def function(self):
            exact = ExactAttention().function()

            def attend(module, query, key, value, attention_mask, **kwargs):
                seen.append(attention_mask)
                return exact(module, query, key, value, attention_mask, **kwargs)

            return attend

    ours, eager = tiny_llama(install(Recording())), tiny_llama("eager")
    eager.load_state_dict(ours.state_dict())
    ids = torch.randint(0, 50, (1, 6), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, eager(ids).logits, atol=1e-5, rtol=1e-4)
    mask = seen[0]
    assert mask is not None and mask.dtype.is_floating_point and mask.shape[-2:] == (6, 6)
    future = torch.ones(6, 6, dtype=torch.bool).triu(1)
    assert (mask[0, 0][future] < -1e30).all() and (mask[0, 0][~future] == 0).all()


def test_implementation_name_depends_on_options_and_avoids_transformers_keywords():
    class FlashSampledAttention(ExactAttention):
        class Options(Options):
            shots: int = 64

    a = implementation_name(FlashSampledAttention(FlashSampledAttention.Options(shots=8)))
    b = implementation_name(FlashSampledAttention(FlashSampledAttention.Options(shots=16)))
    assert a != b and a.startswith("qslm_") and "flash" not in a


def test_unknown_mask_interface_is_refused():
    class Odd(ExactAttention):
        mask_interface = "flex_attention"

    with pytest.raises(ValueError, match="mask_interface"):
        install(Odd())


def test_importing_the_module_does_not_import_torch():
    code = (
        "import sys; import qslm.attention.exact, qslm.attention.hf; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
