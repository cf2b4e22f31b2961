"""``qiskit.sampled`` beside the core's ``sampled`` (naive) at equal shots: the relative error of
attention outputs against exact attention, the naive theory, shots discarded by post-selection,
and the wall time per row (the core's: median of 5 calls; both on one thread), noiseless and under
each noise channel.

Inputs: random queries, keys and values (standard normal, head dim 16), causal, batch 4 x 4
heads; the relative error is ``sqrt(sum ||o - o_exact||^2 / sum ||o_exact||^2)`` over all rows.

    python qslm-backend-qiskit/benchmarks/sampled.py [--keys 16,32,64] [--shots 16,64]
        [--strength 0.1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from importlib.metadata import version


def relative_error(out, exact) -> float:
    return float(((out - exact).norm() / exact.norm()).item())


def main() -> None:
    import torch

    from qslm.attention.probabilities import probabilities
    from qslm.attention.sampled import SampledAttention
    from qslm_qiskit.sampled import QiskitSampledAttention

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", default="16,32,64")
    parser.add_argument("--shots", default="16,64")
    parser.add_argument("--strength", type=float, default=0.1)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as Aer here (the threads option's default): one core each

    print(
        "| keys | shots | noise | qiskit.sampled error | core sampled error | naive theory "
        "| discarded shots | ms per row (qiskit) | ms per row (core) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n in [int(x) for x in args.keys.split(",")]:
        g = torch.Generator().manual_seed(n)
        q, k, v = (torch.randn(4, 4, n, 16, generator=g, dtype=torch.float64) for _ in range(3))
        p, _ = probabilities(q, k, causal=True)
        exact = p @ v
        var = ((p @ (v * v)) - exact**2).sum(-1)
        for shots in [int(x) for x in args.shots.split(",")]:
            theory = float((var.sum() / shots / (exact**2).sum()).sqrt())
            naive = SampledAttention(SampledAttention.Options(samples=shots))
            naive.attend(q, k, v, causal=True)  # warm-up
            calls = []
            for _ in range(5):
                started = time.perf_counter()
                core, _ = naive.attend(q, k, v, causal=True)
                calls.append(time.perf_counter() - started)
            core_ms = statistics.median(calls) / p[..., 0].numel() * 1000
            channels = ["none", "depolarizing", "amplitude_damping", "phase_damping", "thermal"]
            for noise in channels if shots == 64 and n <= 32 else ["none"]:
                strength = 0.0 if noise == "none" else args.strength
                opts = QiskitSampledAttention.Options(
                    shots=shots, noise=noise, noise_strength=strength, max_keys=max(n, 64)
                )
                backend = QiskitSampledAttention(opts)
                started = time.perf_counter()
                ours, _ = backend.attend(q, k, v, causal=True)
                ms = (time.perf_counter() - started) / backend.stats["rows"] * 1000
                label = "none" if noise == "none" else f"{noise} {strength:g}"
                discarded = backend.stats["discarded_shots"] / backend.stats["shots"]
                core_err = f"{relative_error(core, exact):.4f}" if noise == "none" else ""
                core_time = f"{core_ms:.3f}" if noise == "none" else ""
                print(
                    f"| {n} | {shots} | {label} | {relative_error(ours, exact):.4f} | {core_err} "
                    f"| {theory:.4f} | {discarded:.1%} | {ms:.2f} | {core_time} |"
                )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\n{platform.machine()} {platform.system()} {platform.release()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f}; Python {platform.python_version()}, torch "
        f"{version('torch')}, qiskit {version('qiskit')}, qiskit-aer {version('qiskit-aer')}, "
        f"qslm {version('qslm-core')}"
    )


if __name__ == "__main__":
    main()
