"""Sampled attention: unbiasedness (statistically), masks, grouped-query attention, seeding,
training through the straight-through gradient, and the noise channels' measurement effects."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from test_attention_exact import module, qkv, reference_attention  # noqa: E402

from qslm.attention.estimators import STRATEGIES, estimate_weights, n_eff  # noqa: E402
from qslm.attention.noise import measurement_distribution  # noqa: E402
from qslm.attention.probabilities import probabilities  # noqa: E402
from qslm.attention.sampled import SampledAttention  # noqa: E402
from qslm.errors import ConfigError  # noqa: E402

CASES = [(s, "proportional") for s in STRATEGIES] + [("stratified", "neyman")]


def replicated_row(reps: int, n: int = 9, d: int = 3, seed: int = 0):
    """One peaked attention row and its values, repeated ``reps`` times as independent rows."""
    g = torch.Generator().manual_seed(seed)
    p = torch.softmax(2.0 * torch.randn(n, generator=g, dtype=torch.float64), -1)
    v = torch.randn(n, d, generator=g, dtype=torch.float64)
    return p.expand(1, reps, n).clone(), v.expand(1, n, d).clone()


@pytest.mark.parametrize(("strategy", "allocation"), CASES)
def test_estimators_are_unbiased(strategy, allocation):
    reps, k = 20000, 4
    p, v = replicated_row(reps)
    g = torch.Generator().manual_seed(1)
    w = estimate_weights(p, v, strategy, k, g, allocation=allocation, top=2, target_error=0.5)
    out = w @ v  # (1, reps, d): independent estimates of one row's output
    exact = p[0, 0] @ v[0]
    mean, sem = out[0].mean(0), out[0].std(0) / math.sqrt(reps)
    z = (mean - exact).abs() / sem.clamp_min(1e-12)
    assert (z < 4.5).all(), (mean, exact, z)
    assert out[0].std(0).max() > 1e-3  # it really is random, not the exact answer


def test_variance_reduction_and_the_naive_theory():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 128, 64, generator=g, dtype=torch.float64) for _ in range(3))
    p, _ = probabilities(q, k)
    exact = p @ v
    err = {}
    for strategy in ("naive", "stratified", "hybrid"):
        w = estimate_weights(p, v, strategy, 32, g)
        err[strategy] = ((w @ v - exact).norm(dim=-1) ** 2).mean().sqrt().item()
    theory = ((n_eff(p) - 1) / 32 * (exact.norm(dim=-1) ** 2)).mean().sqrt().item()
    assert abs(err["naive"] / theory - 1) < 0.2
    assert err["stratified"] < 0.8 * err["naive"] and err["hybrid"] < 0.8 * err["naive"]


@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_causal_padding_and_gqa_masks_are_honoured(strategy, kv_heads):
    q, k, v = qkv(kv_heads=kv_heads)
    mask = torch.ones(7, 7, dtype=torch.bool).tril().expand(2, 1, 7, 7).clone()
    mask[1, :, :, :2] = False
    mask[1, :, :2, :2] = torch.eye(2, dtype=torch.bool)
    backend = SampledAttention(SampledAttention.Options(strategy=strategy, samples=64))
    out, weights = backend.function()(module(4, kv_heads), q, k, v, mask, scaling=0.3)
    assert out.shape == (2, 7, 4, 8)
    assert (weights[~mask.expand_as(weights)] == 0).all()  # no masked key is ever read
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 7, dtype=weights.dtype))
    # a row with one allowed key is exact
    expected = reference_attention(q, k, v, mask, 0.3, causal=False)
    torch.testing.assert_close(out[:, 0], expected[:, 0])


def test_additive_mask_and_causal_without_mask():
    q, k, v = qkv(heads=2, kv_heads=1)
    backend = SampledAttention(SampledAttention.Options(samples=16))
    _, w_none = backend.attend(q, k, v, None, causal=True)
    additive = torch.zeros(2, 1, 7, 7, dtype=torch.float64)
    additive.masked_fill_(
        ~torch.ones(7, 7, dtype=torch.bool).tril(), torch.finfo(torch.float64).min
    )
    _, w_add = backend.attend(q, k, v, additive)
    future = torch.ones(7, 7, dtype=torch.bool).triu(1)
    assert (w_none[..., future] == 0).all() and (w_add[..., future] == 0).all()


def test_seeded_and_reseedable():
    q, k, v = qkv()
    a = SampledAttention(SampledAttention.Options(seed=3))
    b = SampledAttention(SampledAttention.Options(seed=3))
    first = a.attend(q, k, v, causal=True)[0]
    torch.testing.assert_close(first, b.attend(q, k, v, causal=True)[0])
    assert not torch.equal(first, a.attend(q, k, v, causal=True)[0])
    a.reseed()
    torch.testing.assert_close(first, a.attend(q, k, v, causal=True)[0])


def test_straight_through_gradient_is_the_exact_softmax_gradient_for_scores():
    q, k, v = qkv(batch=1, heads=1, kv_heads=1)
    q.requires_grad_(True)
    backend = SampledAttention(SampledAttention.Options(samples=8))
    out, _ = backend.attend(q, k, v, causal=True)
    grad_out = torch.randn_like(out)
    (out * grad_out).sum().backward()
    ours = q.grad.clone()
    q.grad = None
    p, _ = probabilities(q, k, causal=True)
    ((p @ v) * grad_out).sum().backward()
    torch.testing.assert_close(ours, q.grad)


def test_noise_needs_a_measuring_strategy():
    opts = SampledAttention.Options(strategy="hybrid", noise="depolarizing", noise_strength=0.1)
    with pytest.raises(ConfigError, match="noise"):
        SampledAttention(opts).plan()


# --- noise channels against a density-matrix simulation --------------------------------------


def kraus(channel, s, n_th=0.0):
    import numpy as np

    if channel == "amplitude_damping":
        return [np.array([[1, 0], [0, math.sqrt(1 - s)]]), np.array([[0, math.sqrt(s)], [0, 0]])]
    if channel == "phase_damping":
        return [np.array([[1, 0], [0, math.sqrt(1 - s)]]), np.array([[0, 0], [0, math.sqrt(s)]])]
    if channel == "thermal":  # generalised amplitude damping
        a, b = math.sqrt(1 - n_th), math.sqrt(n_th)
        return [
            a * np.array([[1, 0], [0, math.sqrt(1 - s)]]),
            a * np.array([[0, math.sqrt(s)], [0, 0]]),
            b * np.array([[math.sqrt(1 - s), 0], [0, 1]]),
            b * np.array([[0, 0], [math.sqrt(s), 0]]),
        ]
    raise ValueError(channel)


def simulated_z_statistics(amplitudes, channel, s, n_th=0.0):
    """Diagonal of the channel applied to |psi><psi| (qubit i = bit i of the basis index),
    with complex phases on the amplitudes so coherences are present."""
    import numpy as np

    size = len(amplitudes)
    nq = int(math.log2(size))
    phases = np.exp(1j * np.arange(size) * 0.7)
    psi = amplitudes * phases
    rho = np.outer(psi, psi.conj())
    if channel == "depolarizing":
        rho = (1 - s) * rho + s * np.eye(size) / size
    else:
        for qubit in range(nq):
            new = np.zeros_like(rho)
            for op in kraus(channel, s, n_th):
                # qubit i is bit i: the leftmost factor of the Kronecker product is the top qubit
                full = np.array([[1.0]])
                for j in reversed(range(nq)):
                    full = np.kron(full, op if j == qubit else np.eye(2))
                new += full @ rho @ full.conj().T
            rho = new
    return np.real(np.diag(rho))


@pytest.mark.parametrize(
    ("channel", "s", "n_th"),
    [
        ("depolarizing", 0.3, 0.0),
        ("amplitude_damping", 0.25, 0.0),
        ("phase_damping", 0.6, 0.0),
        ("thermal", 0.4, 0.2),
    ],
)
def test_channel_matches_density_matrix_simulation(channel, s, n_th):
    import numpy as np

    g = torch.Generator().manual_seed(5)
    p = torch.softmax(torch.randn(8, generator=g, dtype=torch.float64), -1)
    expected = simulated_z_statistics(np.sqrt(p.numpy()), channel, s, n_th)
    got = measurement_distribution(p, channel, s, n_th).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert abs(got.sum() - 1) < 1e-12


def test_phase_damping_leaves_sampled_attention_unchanged():
    q, k, v = qkv()
    clean = SampledAttention(SampledAttention.Options(seed=4, samples=16))
    noisy = SampledAttention(
        SampledAttention.Options(seed=4, samples=16, noise="phase_damping", noise_strength=0.9)
    )
    a, wa = clean.attend(q, k, v, causal=True)
    b, wb = noisy.attend(q, k, v, causal=True)
    torch.testing.assert_close(wa, wb)  # same shots, shot for shot
    torch.testing.assert_close(a, b)


def test_depolarizing_estimate_converges_to_the_post_selected_mixture():
    """n = 6 keys on 3 qubits: depolarizing puts lam/8 on each state, 2 of which are padding;
    shots there (and on no other state) are discarded."""
    reps, n, lam = 40000, 6, 0.4
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(n, generator=g, dtype=torch.float64)
    v = torch.randn(1, 1, n, 2, generator=g, dtype=torch.float64)
    q = scores.view(1, 1, 1, n).expand(1, 1, reps, n).clone()
    key = torch.eye(n, dtype=torch.float64).view(1, 1, n, n)
    backend = SampledAttention(
        SampledAttention.Options(samples=1, noise="depolarizing", noise_strength=lam)
    )
    out, _ = backend.attend(q, key, v, scaling=1.0)
    p = torch.softmax(scores, -1)
    mixed = (1 - lam) * p + lam / 8
    expected = (mixed / mixed.sum()) @ v[0, 0]
    kept = out[0, 0].abs().sum(-1) > 0  # a discarded single shot leaves a zero row
    assert abs(kept.double().mean().item() - (1 - lam * 2 / 8)) < 0.01
    torch.testing.assert_close(out[0, 0][kept].mean(0), expected, atol=0.02, rtol=0)


def test_amplitude_damping_moves_shots_toward_low_indices():
    n = 8
    p = torch.zeros(1, 1, 4000, n, dtype=torch.float64)
    p[..., n - 1] = 1.0  # |111>
    from qslm.attention.estimators import noisy_measurement

    allowed = torch.ones(1, 1, 1, n, dtype=torch.bool)
    w = noisy_measurement(
        p,
        allowed,
        1,
        1,
        torch.Generator().manual_seed(0),
        channel="amplitude_damping",
        strength=0.5,
    )
    hist = w[0, 0].mean(0)
    # each of the three bits falls to 0 independently with probability 1/2: uniform over 8
    torch.testing.assert_close(
        hist, torch.full((n,), 1 / 8, dtype=torch.float64), atol=0.03, rtol=0
    )


def test_backend_modules_import_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; import qslm.attention.sampled, qslm.attention.mps, qslm.commands.bench, "
        "qslm.attention.noise, qslm.attention.estimators, qslm.evaluate.attention_error; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_adaptive_spends_fewer_samples_on_peaked_rows_and_stays_unbiased():
    from qslm.attention.estimators import adaptive_samples

    reps, k = 20000, 64
    p, v = replicated_row(reps)  # N_eff of a few keys
    k_row = adaptive_samples(p[:, :1], k, target_error=0.5)
    assert 1 < k_row.item() < k
    flat = torch.full((1, 1, 400), 1 / 400, dtype=torch.float64)
    assert adaptive_samples(flat, k, target_error=0.5).item() == k
    w = estimate_weights(p, v, "adaptive", k, torch.Generator().manual_seed(3), target_error=0.5)
    assert ((w > 0).sum(-1) <= k_row).all()
    out, exact = (w @ v)[0], p[0, 0] @ v[0]
    z = (out.mean(0) - exact).abs() / (out.std(0) / reps**0.5)
    assert (z < 4.5).all()
