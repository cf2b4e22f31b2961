"""Sampling estimators of attention rows: ``o = sum_j p_j v_j`` from a few value reads.

Every estimator returns a random weight matrix ``W`` (same shape as ``p``) and the output is
``W @ V``; for the unbiased ones ``E[W] = p``, hence ``E[W @ V] = p @ V``. Shapes:
``p`` is ``(..., rows, n)`` (rows sum to 1, or to 0 for a row with nothing to attend to),
``v`` is ``(..., n, d)``. ``k`` is the budget of value vectors read per row, the same for every
strategy (the exact top keys of ``hybrid`` and ``control_variate`` count toward it).

All of them start from the exact probabilities, i.e. from all ``n`` logits: they model
measurement-style attention and its error; they are not a faster way to compute attention.

Variances are per output coordinate; ``Var_p(v) = sum_j p_j v_j^2 - o^2``. For roughly
isotropic values the relative error of ``naive`` is ``sqrt((N_eff - 1) / k)`` with
``N_eff = 1 / sum_j p_j^2``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

STRATEGIES = ("naive", "stratified", "hybrid", "control_variate", "adaptive")


def _uniform(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    import torch

    return torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)


def inverse_cdf(cdf: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Indices ``j`` with ``cdf[j-1] <= u < cdf[j]`` (``u`` below the row's total), so a key
    of zero probability is never drawn."""
    import torch

    idx = torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True)
    return idx.clamp_(max=cdf.shape[-1] - 1)


def draw(
    p: torch.Tensor, k: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` i.i.d. keys per row from ``p`` (by inverse CDF) and each row's total mass."""
    cdf = p.cumsum(-1)
    total = cdf[..., -1:]
    u = _uniform((*p.shape[:-1], k), p, generator) * total
    return inverse_cdf(cdf, u), total


def _scatter(p: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.zeros_like(p).scatter_add_(-1, idx, w.expand_as(idx).to(p.dtype))


def n_eff(p: torch.Tensor) -> torch.Tensor:
    """Effective support of each row, ``1 / sum p^2`` (1 for a one-hot row, n for uniform)."""
    return 1.0 / (p * p).sum(-1).clamp_min(1e-30)


def naive(p: torch.Tensor, k: int, generator=None) -> torch.Tensor:
    """Mean of ``k`` i.i.d. draws from the row's softmax. Unbiased;
    variance ``Var_p(v) / k``."""
    idx, total = draw(p, k, generator)
    return _scatter(p, idx, (total > 0).to(p.dtype) / k)


def stratified(
    p: torch.Tensor,
    k: int,
    generator=None,
    *,
    v: torch.Tensor | None = None,
    allocation: str = "proportional",
) -> torch.Tensor:
    """Stratified inverse-CDF sampling. Keys are sorted by probability (largest first) and the
    cumulative mass ``[0, 1)`` is cut into strata of equal mass; stratum ``s`` of mass
    ``m_s`` gets ``k_s >= 1`` draws of ``u`` uniform inside it, each weighted ``m_s / k_s``.
    Unbiased for any allocation with every ``k_s >= 1``; variance
    ``sum_s m_s^2 Var_s(v) / k_s``, never above naive's under proportional allocation.

    - ``proportional``: ``k`` strata, one draw each (a key heavier than ``1/k`` fills whole
      strata and is read almost deterministically).
    - ``neyman``: ``max(1, k // 4)`` strata, one draw each plus the rest in proportion to
      ``m_s sigma_s`` (``sigma_s``: the values' spread in the stratum, keys assigned to the
      stratum of their midpoint for this estimate only), which minimises the variance.
    """
    import torch

    sorted_p, order = p.sort(-1, descending=True)
    cdf = sorted_p.cumsum(-1)
    total = cdf[..., -1:]
    lead = p.shape[:-1]
    if allocation == "proportional" or v is None:
        strata = k
        counts = None
    elif allocation == "neyman":
        strata = max(1, k // 4)
    else:
        raise ValueError(f"unknown allocation {allocation!r}")
    edges = torch.arange(strata + 1, device=p.device, dtype=p.dtype) / strata  # (S+1,)
    if strata == k:
        slot_stratum = torch.arange(k, device=p.device).expand(*lead, k)
        per_stratum = torch.ones(*lead, strata, device=p.device, dtype=p.dtype)
    else:
        mid = (cdf - sorted_p / 2) / total.clamp_min(1e-30)
        member = (mid * strata).long().clamp_(0, strata - 1)  # (..., rows, n), sorted order
        member = torch.empty_like(member).scatter_(-1, order, member)  # back to key order
        onehot = torch.nn.functional.one_hot(member, strata).to(p.dtype) * p[..., None]
        mass = onehot.sum(-2).clamp_min(1e-30)  # (..., rows, S)
        vd = v.to(p.dtype)
        mean = torch.einsum("...rns,...nd->...rsd", onehot, vd) / mass[..., None]
        second = torch.einsum("...rns,...n->...rs", onehot, (vd * vd).sum(-1))
        sigma = (second / mass - (mean * mean).sum(-1)).clamp_min(0).sqrt()
        score = sigma / strata  # every stratum has mass 1/strata
        norm = score.sum(-1, keepdim=True)
        share = torch.where(norm > 0, score / norm.clamp_min(1e-30), 1.0 / strata)
        counts = 1 + torch.floor((k - strata) * share)  # (..., rows, S), sum <= k
        per_stratum = counts
        ends = counts.cumsum(-1)
        slots = torch.arange(k, device=p.device, dtype=p.dtype).expand(*lead, k)
        slot_stratum = torch.searchsorted(ends.contiguous(), slots.contiguous(), right=True)
    used = slot_stratum < strata
    slot_stratum = slot_stratum.clamp(max=strata - 1)
    lo = edges[slot_stratum]
    u = (lo + _uniform((*lead, k), p, generator) / strata) * total
    pos = inverse_cdf(cdf, u)
    keys = order.gather(-1, pos)
    w = total / strata / per_stratum.gather(-1, slot_stratum) * used
    return _scatter(p, keys, w)


def _gather_rows(v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``v[..., idx, :]`` for ``idx`` of shape ``(..., rows, m)``: ``(..., rows, m, d)``."""
    rows = idx.shape[-2]
    src = v.unsqueeze(-3).expand(*v.shape[:-2], rows, *v.shape[-2:])
    return src.gather(-2, idx.unsqueeze(-1).expand(*idx.shape, v.shape[-1]))


def _top(p: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact part (``p`` on the top-``m`` keys, 0 elsewhere) and the rest."""
    import torch

    m = min(m, p.shape[-1])
    head = torch.zeros_like(p)
    if m > 0:
        top = p.topk(m, dim=-1).indices
        head.scatter_(-1, top, p.gather(-1, top))
    return head, p - head


def _best_split(p: torch.Tensor, k: int) -> int:
    """The number of top keys ``m`` to read exactly that minimises, averaged over the rows, the
    variance bound ``t_m^2 / (k - m)`` (``t_m`` the mass left after the top ``m``; values of
    unit spread); 0 when no split beats plain sampling."""
    m_max = min(k - 1, p.shape[-1])
    if m_max < 1:
        return 0
    import torch

    top_mass = p.topk(m_max, dim=-1).values.cumsum(-1)  # (..., rows, m_max): c_1..c_m
    total = p.sum(-1, keepdim=True)
    tail = torch.cat([total, total - top_mass], dim=-1).clamp_min(0)  # t_0..t_m_max
    reads = k - torch.arange(m_max + 1, device=p.device, dtype=p.dtype)
    bound = (tail * tail / reads).reshape(-1, m_max + 1).mean(0)
    return int(bound.argmin())


def hybrid(p: torch.Tensor, k: int, generator=None, *, top: int) -> torch.Tensor:
    """The ``top`` most probable keys exactly, the tail by ``k - top`` draws from the tail's
    own distribution (stratified, proportional: one per equal-mass stratum), weighted by the
    tail's true mass ``t``. Unbiased; variance at most ``t^2 Var_tail(v) / (k - top)`` (zero
    when the top keys hold all the mass).

    ``top = 0`` chooses ``top`` from the rows (the split minimising the mean of that bound) and,
    per row, uses it only where the bound beats ``k`` plain stratified draws. On flat rows this
    is plain stratified sampling, never worse than ``naive``; a fixed ``top`` spends reads on
    keys that hold little mass there."""
    if top == 0:
        import torch

        m = _best_split(p, k)
        plain = stratified(p, k, generator)
        if m == 0:
            return plain
        head, tail = _top(p, m)
        split = head + stratified(tail, k - m, generator)
        # Per row, the split only where its bound t^2/(k - m) beats plain sampling's 1/k. The
        # choice depends on p alone, never on the draws, so the estimate stays unbiased.
        t = tail.sum(-1, keepdim=True)
        total = p.sum(-1, keepdim=True)
        return torch.where(t * t * k < (k - m) * total * total, split, plain)
    head, tail = _top(p, top)
    draws = max(1, k - min(top, p.shape[-1]))
    return head + stratified(tail, draws, generator)


def control_variate(
    p: torch.Tensor, k: int, generator=None, *, v: torch.Tensor, top: int
) -> torch.Tensor:
    """Naive draws with the control ``g(j) = v_j [j in top]``, whose mean ``sum_top p_j v_j``
    is computed exactly from the ``top`` keys (never the exact output): the estimate is
    ``mean(f - c g) + c E[g]`` over ``k - top`` draws. The coefficient
    ``c = Cov(f, g) / Var(g)`` (summed over coordinates) is cross-fitted: estimated on one half
    of the draws and applied to the other, so ``c`` is independent of the draws it weights and
    the estimator is unbiased. Variance about ``Var_p(v) (1 - rho^2) / (k - top)``, ``rho`` the
    correlation of ``f`` and ``g``; at ``c = 1`` it reads the tail like naive reads it, so it
    never beats ``hybrid`` at the same budget (draws falling on the top keys are wasted)."""
    import torch

    head, _ = _top(p, top)
    in_top = head > 0
    draws = max(2, k - min(top, p.shape[-1]))
    idx, total = draw(p, draws, generator)
    f = _gather_rows(v.to(p.dtype), idx)  # (..., rows, draws, d)
    hit = in_top.gather(-1, idx).to(p.dtype)  # (..., rows, draws)
    g = f * hit[..., None]
    half = draws // 2
    halves = (slice(0, half), slice(half, draws))

    def coefficient(s: slice) -> torch.Tensor:
        fs, gs = f[..., s, :], g[..., s, :]
        fc = fs - fs.mean(-2, keepdim=True)
        gc = gs - gs.mean(-2, keepdim=True)
        var = (gc * gc).sum((-1, -2))
        return torch.where(var > 0, (fc * gc).sum((-1, -2)) / var.clamp_min(1e-30), 0.0)

    c_first, c_second = coefficient(halves[1]), coefficient(halves[0])
    c = torch.cat(
        (
            c_first[..., None].expand(*c_first.shape, half),
            c_second[..., None].expand(*c_second.shape, draws - half),
        ),
        dim=-1,
    )
    w = (1.0 - c * hit) * (total > 0).to(p.dtype) / draws
    known = (c_first * half + c_second * (draws - half)) / draws
    return _scatter(p, idx, w) + known[..., None] * head


def adaptive_samples(p: torch.Tensor, k: int, target_error: float) -> torch.Tensor:
    """Draws per row: ``ceil((N_eff - 1) / target^2)``, the naive theory's count for relative
    error ``target``, between 1 and ``k``."""
    need = ((n_eff(p) - 1.0) / target_error**2).ceil()
    return need.clamp(1, k)


def adaptive(p: torch.Tensor, k: int, generator=None, *, target_error: float) -> torch.Tensor:
    """Naive sampling with a per-row count chosen from the row's ``N_eff`` (a function of ``p``
    alone, not of the draws). Unbiased; variance ``Var_p(v) / k_row``."""
    import torch

    k_row = adaptive_samples(p, k, target_error)[..., None]  # (..., rows, 1)
    idx, total = draw(p, k, generator)
    slots = torch.arange(k, device=p.device, dtype=p.dtype)
    w = (slots < k_row).to(p.dtype) / k_row * (total > 0).to(p.dtype)
    return _scatter(p, idx, w)


def noisy_measurement(
    p: torch.Tensor,
    allowed: torch.Tensor,
    k_row: torch.Tensor | int,
    k: int,
    generator,
    *,
    channel: str,
    strength: float,
    thermal_population: float = 0.0,
) -> torch.Tensor:
    """Shots of the amplitude-encoded row through a noise channel (see
    :mod:`qslm.attention.noise`): ``k`` draws from the noisy Z-basis distribution over
    ``2^q`` outcomes; the first ``k_row`` count, and among those, shots naming a padding
    state or a masked key are discarded; the rest are averaged. Biased by the noise (that is
    what it measures): in expectation it is attention under the post-selected noisy
    distribution."""
    import torch

    from qslm.attention.noise import measurement_distribution, num_qubits

    n = p.shape[-1]
    size = 2 ** num_qubits(n)
    padded = torch.nn.functional.pad(p, (0, size - n))
    meas = measurement_distribution(padded, channel, strength, thermal_population)
    idx, total = draw(meas, k, generator)
    ok = idx < n
    key = idx.clamp(max=n - 1)
    ok &= allowed.expand_as(p).gather(-1, key)
    slots = torch.arange(k, device=p.device)
    k_row = torch.as_tensor(k_row, device=p.device)
    if k_row.dim():
        k_row = k_row[..., None]
    ok &= slots < k_row
    ok &= total > 0
    kept = ok.sum(-1, keepdim=True).clamp_min(1)
    return _scatter(p, key, ok.to(p.dtype) / kept)


def estimate_weights(
    p: torch.Tensor,
    v: torch.Tensor,
    strategy: str,
    k: int,
    generator=None,
    *,
    top: int = 0,
    allocation: str = "proportional",
    target_error: float = 0.1,
) -> torch.Tensor:
    """The random weights of ``strategy`` (``top = 0``: chosen per row for ``hybrid``, ``k // 2``
    for ``control_variate``)."""
    if strategy == "naive":
        return naive(p, k, generator)
    if strategy == "stratified":
        return stratified(p, k, generator, v=v, allocation=allocation)
    if strategy == "hybrid":
        return hybrid(p, k, generator, top=top)
    if strategy == "control_variate":
        return control_variate(p, k, generator, v=v, top=top or k // 2)
    if strategy == "adaptive":
        return adaptive(p, k, generator, target_error=target_error)
    raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")


def naive_theory(n_eff_value: float, k: int) -> float:
    """Relative error of naive sampling for isotropic values: ``sqrt((N_eff - 1) / k)``."""
    return math.sqrt(max(n_eff_value - 1.0, 0.0) / k)
