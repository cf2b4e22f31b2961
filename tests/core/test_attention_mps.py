"""The MPS backend: exact at full bond dimension, truncation reported, shots follow |psi|^2."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from test_attention_exact import module, qkv  # noqa: E402

from qslm.attention.mps import MpsAttention, mps_floats, sample_mps, to_mps, to_vector  # noqa: E402


def rows(n=16, r=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(2 * torch.randn(r, n, generator=g, dtype=torch.float64), -1), g


def test_full_bond_is_exact_and_shots_follow_the_distribution():
    p, g = rows()
    cores, discarded = to_mps(p.sqrt(), max_bond=4)  # 4 qubits need bond 4 at most
    assert (discarded < 1e-20).all()
    torch.testing.assert_close(to_vector(cores), p.sqrt())
    shots = 100_000
    idx = sample_mps(cores, shots, g)
    hist = torch.zeros_like(p).scatter_add_(1, idx, torch.ones_like(idx, dtype=p.dtype)) / shots
    sigma = (p * (1 - p) / shots).sqrt()
    assert ((hist - p).abs() < 5 * sigma + 1e-9).all()


def test_truncation_is_reported_and_saves_memory():
    p, _ = rows(n=256)
    full, d_full = to_mps(p.sqrt(), max_bond=16)
    small, d_small = to_mps(p.sqrt(), max_bond=2)
    assert (d_full < 1e-20).all() and (d_small > 1e-3).all()
    assert mps_floats(small) < 256 < mps_floats(full)


def test_backend_honours_causal_and_padding_masks_with_gqa():
    q, k, v = qkv(kv_heads=2)
    mask = torch.ones(7, 7, dtype=torch.bool).tril().expand(2, 1, 7, 7).clone()
    mask[1, :, :, :2] = False
    mask[1, :, :2, :2] = torch.eye(2, dtype=torch.bool)
    backend = MpsAttention(MpsAttention.Options(samples=32, max_bond=1))
    out, weights = backend.function()(module(4, 2), q, k, v, mask, scaling=0.3)
    assert out.shape == (2, 7, 4, 8)
    assert (weights[~mask.expand_as(weights)] == 0).all()
    assert backend.stats["dense_floats"] == 8 and backend.stats["truncation_error"] >= 0
