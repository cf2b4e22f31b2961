"""qiskit.sampled: the amplitude encoding against Qiskit's StatePreparation, Aer's shots against
the row's distribution and against the core's sampled backend, each noise channel's effect on
the measured statistics (checked against the core's classical maps, with the tests' power
shown), masks, guards, seeding and the straight-through gradient."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

from qslm.attention.noise import measurement_distribution  # noqa: E402
from qslm.attention.probabilities import probabilities  # noqa: E402
from qslm.attention.sampled import SampledAttention  # noqa: E402
from qslm.errors import ConfigError, QslmError  # noqa: E402
from qslm_qiskit.amplitudes import num_qubits, preparation_template, template_angles  # noqa: E402
from qslm_qiskit.sampled import (  # noqa: E402
    QiskitSampledAttention,
    measurement_circuit,
    sample_outcomes,
)

# A peaked 8-outcome row with a masked key (index 2) and two padding states (6, 7): n = 6 keys.
ROW = np.array([0.40, 0.25, 0.0, 0.15, 0.12, 0.08, 0.0, 0.0])


def chi2_pvalue(counts: np.ndarray, expected_p: np.ndarray) -> float:
    """Goodness of fit of pooled counts to a distribution (outcomes of expected probability 0
    must have no counts; those are checked exactly, not in the statistic)."""
    support = expected_p > 0
    assert counts[~support].sum() == 0, (counts, expected_p)
    f_exp = expected_p[support] / expected_p[support].sum() * counts.sum()
    return float(stats.chisquare(counts[support], f_exp).pvalue)


def pooled_counts(channel="none", strength=0.0, n_th=0.0, rows=200, shots=64, seed=1):
    method = "statevector" if channel in ("none", "depolarizing") else "density_matrix"
    counts = sample_outcomes(
        np.tile(ROW, (rows, 1)),
        shots,
        channel=channel,
        strength=strength,
        thermal_population=n_th,
        method=method,
        seed=seed,
    )
    return counts


@pytest.mark.parametrize("n", [2, 3, 5, 8, 13, 32])
def test_template_prepares_the_same_state_as_qiskit_state_preparation(n):
    from qiskit import QuantumCircuit
    from qiskit.circuit.library import StatePreparation
    from qiskit.quantum_info import Statevector

    rng = np.random.default_rng(n)
    q = num_qubits(n)
    p = np.zeros((3, 2**q))
    p[:, :n] = rng.dirichlet(np.full(n, 0.5), size=3)
    p[1, rng.integers(n)] = 0.0  # a masked key
    p[1] /= p[1].sum()
    angles = template_angles(p)
    template = preparation_template(q)
    for row, theta in zip(p, angles, strict=True):
        ours = Statevector(template.assign_parameters(theta))
        ref = QuantumCircuit(q)
        ref.append(StatePreparation(np.sqrt(row)), range(q))
        # Real, non-negative amplitudes: the same state, not only the same probabilities.
        np.testing.assert_allclose(ours.data, Statevector(ref).data, atol=1e-10)


def test_noiseless_shots_follow_the_row_and_rows_are_independent():
    counts = pooled_counts()
    assert chi2_pvalue(counts.sum(0), ROW) > 1e-3
    # Each row's count of key 0 is binomial(64, 0.4): independent shots per row, not one draw
    # repeated (rows share their circuit and angles).
    k0 = counts[:, 0]
    assert len(set(k0.tolist())) > 5
    var = 64 * 0.4 * 0.6
    assert 0.7 * var < k0.var() < 1.4 * var


def test_error_matches_the_core_sampled_backend_at_equal_shots():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(16, 4, 32, 16, generator=g, dtype=torch.float64) for _ in range(3))
    p, _ = probabilities(q, k, causal=True)
    exact = p @ v
    ours, _ = QiskitSampledAttention(QiskitSampledAttention.Options(shots=16)).attend(
        q, k, v, causal=True
    )
    core, _ = SampledAttention(SampledAttention.Options(samples=16)).attend(q, k, v, causal=True)
    e_ours = ((ours - exact).norm(dim=-1) ** 2).flatten().numpy()
    e_core = ((core - exact).norm(dim=-1) ** 2).flatten().numpy()
    # 2048 independent rows each; the same estimator (multinomial frequencies) => equal means.
    assert e_ours.mean() > 0
    welch = stats.ttest_ind(e_ours, e_core, equal_var=False)
    assert welch.pvalue > 1e-3, (e_ours.mean(), e_core.mean())
    assert abs(e_ours.mean() / e_core.mean() - 1) < 0.15
    # ...and both equal the naive theory, Var_p(v) / k summed over coordinates.
    second = p @ (v * v)
    theory = ((second - exact**2).sum(-1) / 16).mean().item()
    assert abs(e_ours.mean() / theory - 1) < 0.1


def test_phase_damping_leaves_z_statistics_unchanged_and_depolarizing_does_not():
    noiseless = pooled_counts(seed=2).sum(0)
    dephased = pooled_counts("phase_damping", 1.0, seed=3).sum(0)
    depolarized = pooled_counts("depolarizing", 0.3, seed=4).sum(0)
    # Maximal dephasing: the measured distribution is still the row's.
    assert chi2_pvalue(dephased, ROW) > 1e-3
    table = np.stack([noiseless, dephased])[:, ROW > 0]
    assert stats.chi2_contingency(table).pvalue > 1e-3
    # The same test has the power to see depolarizing at 0.3: padding and the masked key appear
    # and the distribution is pulled toward uniform.
    assert depolarized[ROW == 0].sum() > 0
    expected = measurement_distribution(torch.tensor(ROW), "depolarizing", 0.3).numpy()
    assert chi2_pvalue(depolarized, expected) > 1e-3
    on_keys = depolarized[ROW > 0]
    refit = ROW[ROW > 0] / ROW.sum() * on_keys.sum()
    assert stats.chisquare(on_keys, refit).pvalue < 1e-6  # not the row, even post-selected
    # key 0 (p = 0.4) lost mass toward uniform: expected 0.7 * 0.4 + 0.3 / 8 = 0.3175
    assert depolarized[0] / depolarized.sum() < 0.36


def test_phase_damping_is_really_applied_it_shows_in_the_x_basis():
    """|+> measured in X reads 0 always; after full dephasing it reads 0 or 1 half the time."""
    from qiskit_aer.primitives import SamplerV2

    plus = np.array([[0.5, 0.5]])
    results = {}
    for strength in (0.0, 1.0):
        circuit = measurement_circuit(1, "phase_damping", strength)
        circuit.h(0)
        circuit.measure_all()
        sampler = SamplerV2(default_shots=2000, seed=5, options={"backend_options": {}})
        data = sampler.run([(circuit, template_angles(plus))]).result()[0].data.meas
        results[strength] = data.get_counts(0).get("1", 0)
    assert results[0.0] == 0
    assert stats.binomtest(results[1.0], 2000, 0.5).pvalue > 1e-3


@pytest.mark.parametrize(
    ("channel", "strength", "n_th"),
    [("amplitude_damping", 0.3, 0.0), ("thermal", 0.4, 0.25), ("depolarizing", 0.5, 0.0)],
)
def test_channels_match_the_core_classical_maps(channel, strength, n_th):
    counts = pooled_counts(channel, strength, n_th, seed=6).sum(0)
    expected = measurement_distribution(torch.tensor(ROW), channel, strength, n_th).numpy()
    assert chi2_pvalue(counts, expected) > 1e-3
    # and it is not the noiseless distribution: the masked key and padding get shots
    assert counts[ROW == 0].sum() > 0


def qkv_masked():
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(2, 2, 6, 8, generator=g) for _ in range(3))
    mask = torch.ones(6, 6, dtype=torch.bool).tril().expand(2, 1, 6, 6).clone()
    mask[1, :, :, :2] = False  # left padding in the second sequence
    mask[1, :, :2, :] = False  # its padded queries attend to nothing
    return q, k, v, mask


@pytest.mark.parametrize("noise", ["none", "depolarizing", "thermal"])
def test_masked_keys_and_padding_states_never_get_weight(noise):
    q, k, v, mask = qkv_masked()
    opts = QiskitSampledAttention.Options(
        shots=64, noise=noise, noise_strength=0.5 * (noise != "none")
    )
    backend = QiskitSampledAttention(opts)
    out, w = backend.attend(q, k, v, mask)
    allowed = mask.expand_as(w)
    assert (w[~allowed] == 0).all()
    rows_with_keys = allowed.any(-1)
    sums = w.sum(-1)
    torch.testing.assert_close(sums[rows_with_keys], torch.ones_like(sums[rows_with_keys]))
    assert (w[~rows_with_keys] == 0).all() and (out[~rows_with_keys] == 0).all()
    assert backend.stats["rows"] == int(rows_with_keys.sum())  # empty rows are not run
    if noise == "none":
        assert backend.stats["discarded_shots"] == 0
    else:
        assert backend.stats["discarded_shots"] > 0


def test_a_row_whose_shots_are_all_discarded_gets_zero_weights():
    # Full amplitude damping sends every shot to |0>, here a masked key: nothing is kept.
    q, k, v = torch.randn(1, 1, 1, 4), torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    mask = torch.tensor([False, True, True, True]).reshape(1, 1, 1, 4)
    opts = QiskitSampledAttention.Options(noise="amplitude_damping", noise_strength=1.0)
    out, w = QiskitSampledAttention(opts).attend(q, k, v, mask)
    assert (w == 0).all() and (out == 0).all()


def test_seeded_and_reseedable():
    q, k, v, mask = qkv_masked()
    a = QiskitSampledAttention(QiskitSampledAttention.Options(seed=7))
    b = QiskitSampledAttention(QiskitSampledAttention.Options(seed=7))
    first = a.attend(q, k, v, mask)[1]
    torch.testing.assert_close(first, b.attend(q, k, v, mask)[1])
    assert not torch.equal(first, a.attend(q, k, v, mask)[1])
    a.reseed()
    torch.testing.assert_close(first, a.attend(q, k, v, mask)[1])


def test_straight_through_gradient_is_the_exact_softmax_gradient():
    q, k, v, _ = qkv_masked()
    q = q.double().requires_grad_(True)
    k, v = k.double(), v.double()
    out, _ = QiskitSampledAttention(QiskitSampledAttention.Options(shots=8)).attend(
        q, k, v, causal=True
    )
    grad_out = torch.randn_like(out)
    (out * grad_out).sum().backward()
    ours = q.grad.clone()
    q.grad = None
    p, _ = probabilities(q, k, causal=True)
    ((p @ v) * grad_out).sum().backward()
    torch.testing.assert_close(ours, q.grad)


def test_long_sequences_and_large_batches_are_refused_naming_the_option():
    backend = QiskitSampledAttention(QiskitSampledAttention.Options(max_keys=16, max_rows=100))
    q = torch.randn(1, 1, 17, 4)
    with pytest.raises(QslmError, match="max_keys"):
        backend.attend(q, q, q, causal=True)
    q = torch.randn(2, 4, 16, 4)  # 128 rows
    with pytest.raises(QslmError, match="max_rows"):
        backend.attend(q, q, q, causal=True)
    assert backend.stats["calls"] == 0  # refused before any simulation
    # The automatic limit follows the cost per row of the noise chosen.
    depolarizing = QiskitSampledAttention.Options(noise="depolarizing", noise_strength=0.1)
    q = torch.randn(1, 33, 32, 4)  # 1056 rows
    with pytest.raises(QslmError, match="max_rows option \\(automatic 1024\\)"):
        QiskitSampledAttention(depolarizing).attend(q, q, q, causal=True)


def test_plan_refuses_what_cannot_work():
    noisy = QiskitSampledAttention.Options(noise="thermal", noise_strength=0.1, max_keys=256)
    with pytest.raises(ConfigError, match=r"attention\.options\.max_keys"):
        QiskitSampledAttention(noisy).plan()
    pointless = QiskitSampledAttention.Options(noise_strength=0.1)
    with pytest.raises(ConfigError, match=r"attention\.options\.noise"):
        QiskitSampledAttention(pointless).plan()
    line = QiskitSampledAttention(QiskitSampledAttention.Options(max_keys=40)).plan()[0]
    assert "6 qubits" in line and "32 shots" in line
