"""Matrix-product-state attention: each row's amplitude vector ``sqrt(p)`` (padded to ``2^q``)
as an MPS over ``q = ceil(log2 n)`` qubits with bond dimension at most ``max_bond`` (SVD
truncation, left to right, most significant bit first), sampled shot by shot with sequential
conditional sampling; the output is the mean of the sampled keys' values.

With ``max_bond >= 2^(q/2)`` the MPS is exact and the estimator is naive sampling (unbiased,
variance ``Var_p(v) / k``). Truncation changes the distribution: ``truncation_error`` is the
discarded weight ``1 - |<psi|psi_trunc>|^2``-style sum of squared discarded singular values
(relative to the norm), and shots on padding states or masked keys, which a truncated state
may put weight on, are discarded. All rows are processed at once (batched SVDs); it computes
every logit first, so it models an MPS simulator's error and memory, not a speed-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field

from qslm.components import AttentionBackend, Options


def to_mps(psi: Any, max_bond: int) -> tuple[list[Any], Any]:
    """MPS cores ``(rows, chi_left, 2, chi_right)`` of the rows of ``psi`` (``(rows, 2^q)``)
    and each row's discarded weight (sum of squared discarded singular values / norm^2)."""
    import torch

    rows, size = psi.shape
    q = max(1, (size - 1).bit_length())
    norm2 = (psi * psi).sum(-1).clamp_min(1e-30)
    discarded = torch.zeros(rows, dtype=psi.dtype, device=psi.device)
    cores = []
    rest = psi.reshape(rows, 1, size)
    chi = 1
    for _ in range(q - 1):
        u, s, vh = torch.linalg.svd(rest.reshape(rows, chi * 2, -1), full_matrices=False)
        c = min(max_bond, s.shape[-1])
        discarded += (s[:, c:] ** 2).sum(-1)
        cores.append(u[:, :, :c].reshape(rows, chi, 2, c))
        rest = s[:, :c, None] * vh[:, :c, :]
        chi = c
    last = rest.reshape(rows, chi, 2, 1)
    kept = (last * last).sum((1, 2, 3), keepdim=True).clamp_min(1e-30).sqrt()
    cores.append(last / kept)
    return cores, discarded / norm2


def to_vector(cores: list[Any]) -> Any:
    """The dense ``(rows, 2^q)`` amplitude vectors an MPS holds (for checking; exponential)."""
    out = cores[0]  # (rows, 1, 2, chi)
    for core in cores[1:]:
        rows, _, size, chi = out.shape
        joined = out.reshape(rows, size, chi) @ core.reshape(rows, chi, -1)
        out = joined.reshape(rows, 1, -1, core.shape[-1])
    return out.reshape(out.shape[0], -1)


def mps_floats(cores: list[Any]) -> int:
    """Numbers stored per row by the MPS (the dense vector stores ``2^q``)."""
    return sum(c[0].numel() for c in cores)


def sample_mps(cores: list[Any], shots: int, generator: Any = None) -> Any:
    """``shots`` basis-state indices per row drawn from ``|psi|^2`` of the MPS, one qubit at a
    time from its conditional distribution given the bits already drawn."""
    import torch

    rows = cores[0].shape[0]
    dtype, device = cores[0].dtype, cores[0].device
    env = [torch.ones(rows, 1, 1, dtype=dtype, device=device)]
    for core in reversed(cores):  # right environments: sum_b A_b R A_b^T
        env.append(torch.einsum("rlbc,rcd,rmbd->rlm", core, env[-1], core))
    env.reverse()  # env[i]: everything right of core i-1
    left = torch.ones(rows, shots, 1, dtype=dtype, device=device)
    idx = torch.zeros(rows, shots, dtype=torch.long, device=device)
    for i, core in enumerate(cores):
        cand = torch.einsum("rsl,rlbc->rsbc", left, core)  # (rows, shots, 2, chi)
        weight = torch.einsum("rsbc,rcd,rsbd->rsb", cand, env[i + 1], cand).clamp_min(0)
        total = weight.sum(-1).clamp_min(1e-300)
        u = torch.rand(rows, shots, generator=generator, device=device, dtype=dtype)
        bit = (u * total >= weight[..., 0]).long()
        left = cand.gather(2, bit[..., None, None].expand(-1, -1, 1, cand.shape[-1]))[:, :, 0]
        left = left / left.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        idx = idx * 2 + bit
    return idx


class MpsOptions(Options):
    """``[attention.options]`` of the ``mps`` backend."""

    samples: int = Field(32, ge=1, description="Shots per row, k.")
    max_bond: int = Field(4, ge=1, description="Largest bond dimension kept by SVD truncation.")
    seed: int = Field(0, ge=0, description="Seed of the backend's random generator.")


class MpsAttention(AttentionBackend):
    """Attention from shots of each row's amplitude vector held as a truncated MPS. The last
    call's ``truncation_error`` (mean over rows) and ``mps_floats`` / ``dense_floats`` per row
    are in :attr:`stats`."""

    Options = MpsOptions
    options: MpsOptions
    mask_interface: ClassVar[str] = "eager"

    def __init__(self, options: Options | None = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self._generators: dict[str, Any] = {}
        self.stats: dict[str, float] = {}

    def reseed(self) -> None:
        """Start every generator again from ``seed`` (as :class:`SampledAttention` does)."""
        self._generators.clear()

    def attend(
        self, query: Any, key: Any, value: Any, attention_mask: Any = None, **kwargs: Any
    ) -> tuple[Any, Any]:
        """Like :meth:`SampledAttention.attend`; straight-through gradient the same way."""
        import torch

        from qslm.attention.noise import num_qubits
        from qslm.attention.probabilities import probabilities, repeat_kv

        dtype = torch.promote_types(query.dtype, torch.float64)
        p, allowed = probabilities(
            query, key, attention_mask, scaling=kwargs.get("scaling"), causal=kwargs.get("causal")
        )
        v = repeat_kv(value, query.shape[1]).to(p.dtype)
        device = str(query.device)
        if device not in self._generators:
            gen = torch.Generator(device=query.device).manual_seed(self.options.seed)
            self._generators[device] = gen
        n = p.shape[-1]
        size = 2 ** num_qubits(n)
        with torch.no_grad():
            pd = p.detach()
            psi = torch.nn.functional.pad(pd.to(dtype), (0, size - n)).sqrt()
            cores, discarded = to_mps(psi.reshape(-1, size), self.options.max_bond)
            shots = sample_mps(cores, self.options.samples, self._generators[device])
            shots = shots.reshape(*p.shape[:-1], -1)
            ok = shots < n
            keys = shots.clamp(max=n - 1)
            ok &= allowed.expand_as(p).gather(-1, keys)
            ok &= pd.sum(-1, keepdim=True) > 0
            kept = ok.sum(-1, keepdim=True).clamp_min(1)
            w = torch.zeros_like(pd).scatter_add_(-1, keys, ok.to(pd.dtype) / kept)
        self.stats = {
            "truncation_error": discarded.mean().item(),
            "mps_floats": float(mps_floats(cores)),
            "dense_floats": float(size),
        }
        weights = p + (w - pd) if p.requires_grad else w
        dropout = kwargs.get("dropout", 0.0)
        if dropout and kwargs.get("training"):
            weights = torch.nn.functional.dropout(weights, p=dropout, training=True)
        return (weights @ v).to(query.dtype), weights.to(query.dtype)

    def function(self) -> Callable[..., Any]:
        from qslm.attention.hf import attend_function

        return attend_function(self)
