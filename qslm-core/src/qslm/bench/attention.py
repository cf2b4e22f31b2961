"""Error against samples for every sampling strategy, beside the naive theory and exact timing.

Random Gaussian queries, keys and values (``scaling = logit_scale / sqrt(d)``, no mask): each row's
relative error ``||o_hat - o|| / ||o||`` is averaged over rows, heads and repeats; the theory
for naive sampling is the row mean of ``sqrt((N_eff - 1) / k)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any


def _ms_per_call(fn: Callable[[], Any], repeats: int, min_seconds: float = 0.05) -> float:
    """Best over ``repeats`` of the mean time of enough back-to-back calls to fill
    ``min_seconds`` (so that scheduler quanta on a busy machine average out)."""
    fn()  # warm-up
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or calls >= 1024:
            break
        calls *= 2
    best = elapsed / calls
    for _ in range(repeats - 1):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1000.0


def run(
    strategies: list[str],
    seq_lens: list[int],
    samples: list[int],
    *,
    dim: int = 64,
    heads: int = 4,
    repeats: int = 3,
    seed: int = 0,
    logit_scale: float = 1.0,
    threads: int = 1,
) -> list[dict[str, Any]]:
    """One result per (strategy, seq_len, samples): errors, N_eff, theory and timings
    (on ``threads`` CPU threads)."""
    import torch
    import torch.nn.functional as F

    from qslm.attention.estimators import n_eff
    from qslm.attention.exact import ExactAttention
    from qslm.attention.probabilities import probabilities
    from qslm.attention.sampled import SampledAttention

    torch.set_num_threads(threads)
    exact_fn = ExactAttention().function()
    module = type("M", (), {"is_causal": False, "num_key_value_groups": 1, "training": False})()
    results = []
    for n in seq_lens:
        g = torch.Generator().manual_seed(seed + n)
        q, k, v = (torch.randn(1, heads, n, dim, generator=g) for _ in range(3))
        scaling = logit_scale * dim**-0.5
        p, _ = probabilities(q, k, scaling=scaling)
        exact = p @ v
        rows_n_eff = n_eff(p)
        o_norm = exact.norm(dim=-1)
        with torch.inference_mode():
            sdpa_ms = _ms_per_call(
                partial(F.scaled_dot_product_attention, q, k, v, scale=scaling), repeats
            )
            exact_ms = _ms_per_call(
                partial(exact_fn, module, q, k, v, None, scaling=scaling), repeats
            )
        for strategy in strategies:
            for kk in samples:
                backend = SampledAttention(
                    SampledAttention.Options(strategy=strategy, samples=kk, seed=seed)
                )
                errors = []
                with torch.inference_mode():
                    for _ in range(repeats):
                        out, _ = backend.attend(q, k, v, scaling=scaling)
                        errors.append(((out - exact).norm(dim=-1) / o_norm).mean().item())
                    ms = _ms_per_call(partial(backend.attend, q, k, v, scaling=scaling), repeats)
                theory = ((rows_n_eff - 1).clamp_min(0) / kk).sqrt().mean().item()
                results.append(
                    {
                        "strategy": strategy,
                        "seq_len": n,
                        "samples": kk,
                        "rel_error": sum(errors) / len(errors),
                        "naive_theory": theory,
                        "n_eff": rows_n_eff.mean().item(),
                        "ms_per_call": ms,
                        "exact_ms_per_call": exact_ms,
                        "sdpa_ms_per_call": sdpa_ms,
                        "dim": dim,
                        "heads": heads,
                        "logit_scale": logit_scale,
                        "threads": threads,
                    }
                )
    return results


def plot(results: list[dict[str, Any]], path: str) -> None:
    """Relative error against samples, one panel per sequence length, theory dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seq_lens = sorted({r["seq_len"] for r in results})
    fig, axes = plt.subplots(1, len(seq_lens), figsize=(4.2 * len(seq_lens), 3.6), squeeze=False)
    for ax, n in zip(axes[0], seq_lens, strict=True):
        rows = [r for r in results if r["seq_len"] == n]
        for strategy in dict.fromkeys(r["strategy"] for r in rows):
            pts = sorted((r["samples"], r["rel_error"]) for r in rows if r["strategy"] == strategy)
            ax.loglog(*zip(*pts, strict=True), marker="o", label=strategy)
        theory = sorted({(r["samples"], r["naive_theory"]) for r in rows})
        ax.loglog(*zip(*theory, strict=True), "k--", label="naive theory")
        ax.set_title(f"n = {n}, mean N_eff = {rows[0]['n_eff']:.0f}")
        ax.set_xlabel("samples k")
        ax.set_ylabel("relative error")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
