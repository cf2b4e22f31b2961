"""Sampled attention: relative error against samples for every strategy, beside the naive
theory sqrt((N_eff - 1) / k), and time per call against exact attention and torch SDPA.

    python benchmarks/attention.py [--seq-lens 64,256,1024] [--samples 8,32,128] [--plot F.png]
    python benchmarks/attention.py mps [SEQ_LEN [LOGIT_SCALE]]

Takes the options of ``qslm bench attention`` (this script runs that command) and prints the
machine and versions first. Random Gaussian Q, K, V, d = 64, 4 heads, no mask.

``mps``: the MPS backend on the same kind of rows (one head, SEQ_LEN = 1024 by default) for
bond dimensions 1 ... 32: mean truncation error, numbers stored per row against the dense
vector, the bias (relative error of the output under the truncated state's distribution) and
the relative error at k = 32, against naive sampling of the exact distribution.
"""

from __future__ import annotations

import os
import platform
import sys

import torch

from qslm.commands.bench import bench_attention


def mps_table(n: int = 1024, k: int = 32, dim: int = 64, logit_scale: float = 1.0) -> None:
    from qslm.attention.estimators import n_eff
    from qslm.attention.mps import MpsAttention, to_mps, to_vector
    from qslm.attention.probabilities import probabilities
    from qslm.attention.sampled import SampledAttention

    g = torch.Generator().manual_seed(0)
    q, key, v = (torch.randn(1, 1, n, dim, generator=g, dtype=torch.float64) for _ in range(3))
    scaling = logit_scale * dim**-0.5
    p = probabilities(q, key, scaling=scaling)[0]
    exact = p @ v

    def rel(out):
        return ((out - exact).norm(dim=-1) / exact.norm(dim=-1)).mean().item()

    naive = SampledAttention(SampledAttention.Options(samples=k))
    naive = naive.attend(q, key, v, scaling=scaling)[0]
    print(f"n = {n}, logit scale {logit_scale}, mean N_eff = {n_eff(p).mean():.1f}, k = {k}")
    print(f"naive sampling of the exact distribution: rel_error {rel(naive):.3f}")
    print("| max_bond | truncation_error | floats per row (dense) | bias | rel_error |")
    print("|---|---|---|---|---|")
    for bond in (1, 2, 4, 8, 16, 32):
        backend = MpsAttention(MpsAttention.Options(samples=k, max_bond=bond))
        out = backend.attend(q, key, v, scaling=scaling)[0]
        s = backend.stats
        # the distribution the truncated MPS samples from, post-selected on real keys
        held = to_vector(to_mps(p.reshape(n, n).sqrt(), bond)[0]) ** 2
        held = held[:, :n] / held[:, :n].sum(-1, keepdim=True)
        bias = rel(held.view(1, 1, n, n) @ v)
        print(
            f"| {bond} | {s['truncation_error']:.4f} | {s['mps_floats']:.0f} "
            f"({s['dense_floats']:.0f}) | {bias:.4f} | {rel(out):.3f} |"
        )


if __name__ == "__main__":
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"python {platform.python_version()}",
        file=sys.stderr,
    )
    if sys.argv[1:2] == ["mps"]:
        args = sys.argv[2:]
        mps_table(int(args[0]) if args else 1024, logit_scale=float(args[1]) if args[1:] else 1.0)
    else:
        bench_attention.main(sys.argv[1:], prog_name="benchmarks/attention.py")
