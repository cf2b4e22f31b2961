"""Sampled ("measurement-style") attention: each row's output estimated from ``samples`` value
reads drawn from its softmax, optionally through a noise channel on the measurement.

It computes all ``n`` logits and the exact softmax first (the probabilities define what is
sampled), so it is a model of shot-based attention and its error, never a speed-up.

Gradient (training): straight-through. The forward pass uses the sampled weights ``W``; the
backward pass treats them as ``p + (W - p).detach()``, so the scores (queries, keys) get the
exact softmax gradient for the sampled output's upstream gradient, and the values get
``W^T grad`` (an unbiased estimate of the exact value gradient for the unbiased strategies).
Training with ``sampled`` therefore trains the model to work under sampling noise in its
forward pass, with exact-softmax gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field

from qslm.components import AttentionBackend, Options
from qslm.errors import ConfigError


class SampledOptions(Options):
    """``[attention.options]`` of the ``sampled`` backend."""

    strategy: Literal["naive", "stratified", "hybrid", "control_variate", "adaptive"] = Field(
        "naive",
        description="Estimator of each row's output (the table in "
        "docs/explanations/sampled-attention.md).",
    )
    samples: int = Field(
        32,
        ge=1,
        description="Value reads per row, k (for adaptive: the most per row; for hybrid and "
        "control_variate the exact top keys count toward it).",
    )
    top: int = Field(
        0,
        ge=0,
        description="Keys computed exactly by hybrid and control_variate; 0 = for hybrid, the "
        "split with the smallest variance bound (plain sampling on flat rows), for "
        "control_variate samples // 2.",
    )
    allocation: Literal["proportional", "neyman"] = Field(
        "proportional", description="Samples per stratum of the stratified strategy."
    )
    target_error: float = Field(
        0.1, gt=0, description="Relative error the adaptive strategy aims for per row."
    )
    noise: Literal["none", "depolarizing", "amplitude_damping", "phase_damping", "thermal"] = Field(
        "none", description="Channel applied before measurement (naive and adaptive)."
    )
    noise_strength: float = Field(
        0.0, ge=0.0, le=1.0, description="The channel's strength (lambda or gamma)."
    )
    thermal_population: float = Field(
        0.0, ge=0.0, le=1.0, description="Excited-state population n_th of the thermal channel."
    )
    seed: int = Field(0, ge=0, description="Seed of the backend's random generator.")


class SampledAttention(AttentionBackend):
    """Softmax attention estimated from samples of each row's distribution.

    Unbiased (``E[output] = exact output``): ``naive``, ``stratified`` (both allocations),
    ``hybrid``, ``control_variate`` (cross-fitted coefficient) and ``adaptive``, all without
    noise. With noise the estimate is of attention under the noisy, post-selected distribution.
    """

    Options = SampledOptions
    options: SampledOptions

    mask_interface: ClassVar[str] = "eager"

    def plan(self) -> list[str]:
        o = self.options
        if o.noise != "none" and o.strategy not in ("naive", "adaptive"):
            raise ConfigError(
                f"attention.options.noise: noise models measurement shots, which only the "
                f"naive and adaptive strategies take; strategy {o.strategy!r} reads known "
                "masses classically"
            )
        return [f"sampled attention: {o.strategy}, k={o.samples}, noise={o.noise}"]

    def __init__(self, options: Options | None = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self._generators: dict[Any, Any] = {}

    def generator(self, device: Any) -> Any:
        """The backend's generator on ``device``, seeded from ``seed`` on first use."""
        import torch

        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.options.seed)
        return self._generators[key]

    def reseed(self) -> None:
        """Start every generator again from ``seed``."""
        self._generators.clear()

    def function(self) -> Callable[..., Any]:
        self.plan()

        from qslm.attention.hf import attend_function

        return attend_function(self)

    def attend(
        self,
        query: Any,
        key: Any,
        value: Any,
        attention_mask: Any = None,
        *,
        scaling: float | None = None,
        causal: bool = False,
        dropout: float = 0.0,
        training: bool = False,
    ) -> tuple[Any, Any]:
        """Sampled attention on ``(batch, heads, seq, dim)`` tensors (keys and values may have
        fewer heads: grouped-query attention). Returns ``(output (batch, heads, seq, dim),
        weights (batch, heads, seq, keys))``."""
        import torch

        from qslm.attention.estimators import estimate_weights, noisy_measurement
        from qslm.attention.probabilities import probabilities, repeat_kv

        o = self.options
        p, allowed = probabilities(query, key, attention_mask, scaling=scaling, causal=causal)
        v = repeat_kv(value, query.shape[1]).to(p.dtype)
        gen = self.generator(query.device)
        with torch.no_grad():
            pd = p.detach()
            if o.noise != "none" and o.noise_strength > 0:
                k_row: Any = o.samples
                if o.strategy == "adaptive":
                    from qslm.attention.estimators import adaptive_samples

                    k_row = adaptive_samples(pd, o.samples, o.target_error)
                w = noisy_measurement(
                    pd,
                    allowed,
                    k_row,
                    o.samples,
                    gen,
                    channel=o.noise,
                    strength=o.noise_strength,
                    thermal_population=o.thermal_population,
                )
            else:
                w = estimate_weights(
                    pd,
                    v.detach(),
                    o.strategy,
                    o.samples,
                    gen,
                    top=o.top,
                    allocation=o.allocation,
                    target_error=o.target_error,
                )
        weights = p + (w - pd) if p.requires_grad else w
        if dropout and training:
            weights = torch.nn.functional.dropout(weights, p=dropout, training=True)
        out = (weights @ v).to(query.dtype)
        return out, weights.to(query.dtype)
