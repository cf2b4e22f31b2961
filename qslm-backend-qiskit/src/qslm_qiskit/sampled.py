"""``qiskit.sampled``: attention whose weights are the measured frequencies of circuits run on Aer.

For every query row, the row's softmax ``p`` (exact, causal and padding masks applied, so a
masked key has probability 0) is amplitude-encoded on ``q = ceil(log2 n)`` qubits
(:mod:`qslm_qiskit.amplitudes`), optionally passed through a noise channel
(:mod:`qslm_qiskit.channels`), and measured ``shots`` times on Aer. All rows of a call are one
Aer job: one circuit per qubit count, a row of angles bound per row.

A shot that names a padding state (``n .. 2^q - 1``) or a masked key carries no attention
sample: it is discarded, and the row's weights are the frequencies of the remaining shots
(renormalised over the keys the row may attend to). Without noise no shot is ever discarded
(those states have amplitude 0) and the weights are the naive estimator of the core's
``sampled`` backend, drawn by a simulated measurement instead of a random generator. A row
whose every shot is discarded (only under noise) gets all-zero weights, as in the core. A row
with nothing to attend to is not run and gets zero weights.

Gradient: straight-through, as in the core's ``sampled``: the forward pass uses the measured
weights ``W``, the backward pass the exact softmax gradient (``p + (W - p).detach()``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field

from qslm.api import AttentionBackend, ConfigError, Options, QslmError

# 2^10 = 1024 keys: a 10-qubit template has 1023 RY and 1022 CX gates; past that, one row costs
# more than the rest of a small model's step.
HARD_MAX_KEYS = 1024
# With a noise channel Aer simulates a density matrix (4^q entries) or one trajectory per shot;
# measured here (2-core VM, 32 keys, 64 shots) at about 1.5 ms (per-qubit channels) to 25 ms
# (register depolarizing) per row, so noisy runs are held to 128 keys (7 qubits).
NOISY_MAX_KEYS = 128
# Rows per call allowed when max_rows = 0 (automatic), from the measured cost per row here
# (benchmarks/sampled.py, 2-core VM under load): 3-15 ms noiseless or with a per-qubit channel,
# 50-80 ms with register depolarizing. About a minute per call at most.
AUTO_MAX_ROWS = {"none": 8192, "per_qubit": 4096, "depolarizing": 1024}


class QiskitSampledOptions(Options):
    """``[attention.options]`` of the ``qiskit.sampled`` backend."""

    shots: int = Field(
        32, ge=1, le=1_000_000, description="Measurements of each row's circuit (the core's k)."
    )
    noise: Literal["none", "depolarizing", "amplitude_damping", "phase_damping", "thermal"] = Field(
        "none", description="qiskit_aer.noise channel applied after state preparation."
    )
    noise_strength: float = Field(
        0.0, ge=0.0, le=1.0, description="The channel's strength (lambda or gamma)."
    )
    thermal_population: float = Field(
        0.0, ge=0.0, le=1.0, description="Excited-state population n_th of the thermal channel."
    )
    max_keys: int = Field(
        64,
        ge=1,
        le=HARD_MAX_KEYS,
        description="Longest key sequence accepted (sets the qubit count); longer is an error.",
    )
    max_rows: int = Field(
        0,
        ge=0,
        description="Most rows (batch x heads x queries) in one attention call, more is an error; "
        "0 = automatic: 8192 without noise, 4096 with a per-qubit channel, 1024 with depolarizing.",
    )
    threads: int = Field(
        1,
        ge=0,
        description="Aer's max_parallel_threads; 0 = all cores. The circuits are tiny, and with "
        "OpenMP on a loaded 2-core VM one call of 1024 rows took 15-24 s instead of 0.8 s.",
    )
    seed: int = Field(0, ge=0, lt=2**31, description="Seed of the simulator's shots.")


class QiskitSampledAttention(AttentionBackend):
    """Attention weights from measured frequencies of amplitude-encoded rows on Aer."""

    Options = QiskitSampledOptions
    options: QiskitSampledOptions

    mask_interface: ClassVar[str] = "eager"

    def __init__(self, options: Options | None = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self._calls = 0
        self.stats: dict[str, float] = {}
        self.reset_stats()

    def plan(self) -> list[str]:
        o = self.options
        if o.noise == "none" and o.noise_strength > 0:
            raise ConfigError(
                "attention.options.noise_strength is set but attention.options.noise is "
                "'none'; name a channel (depolarizing, amplitude_damping, phase_damping, thermal)"
            )
        if o.noise != "none" and o.max_keys > NOISY_MAX_KEYS:
            raise ConfigError(
                f"attention.options.max_keys: {o.max_keys} keys with noise {o.noise!r} would "
                f"simulate a noisy {self.qubits(o.max_keys)}-qubit circuit (density matrix, or a "
                f"trajectory per shot) for every row; at most {NOISY_MAX_KEYS} with a noise channel"
            )
        noise = "no noise" if o.noise == "none" else f"{o.noise} {o.noise_strength:g}"
        return [
            f"qiskit.sampled attention: {o.shots} shots per row on Aer ({self.method()}), "
            f"{noise}; at most {o.max_keys} keys ({self.qubits(o.max_keys)} qubits) and "
            f"{self.max_rows()} rows per call"
        ]

    @staticmethod
    def qubits(keys: int) -> int:
        from qslm_qiskit.amplitudes import num_qubits

        return num_qubits(keys)

    def method(self) -> str:
        """Aer's simulation method: a density matrix for the per-qubit channels (the channel
        is applied once per row, then the shots are drawn; measured fastest here), otherwise
        the statevector (noiseless: one evolution per row; register depolarizing: one
        trajectory per shot, since its 4^q Pauli terms make the density matrix slower)."""
        o = self.options
        if o.noise == "none" or o.noise_strength == 0 or o.noise == "depolarizing":
            return "statevector"
        return "density_matrix"

    def max_rows(self) -> int:
        """The row limit per call: the option, or the automatic one for the noise chosen."""
        o = self.options
        if o.max_rows:
            return o.max_rows
        if o.noise == "none" or o.noise_strength == 0:
            return AUTO_MAX_ROWS["none"]
        return AUTO_MAX_ROWS["depolarizing" if o.noise == "depolarizing" else "per_qubit"]

    def reseed(self) -> None:
        """Start the sequence of per-call simulator seeds again from ``seed``."""
        self._calls = 0

    def reset_stats(self) -> None:
        self.stats = {"calls": 0, "rows": 0, "shots": 0, "discarded_shots": 0, "seconds": 0.0}

    def function(self) -> Callable[..., Any]:
        self.plan()

        from qslm.attention.hf import attend_function

        return attend_function(self)

    def _call_seed(self) -> int:
        import numpy as np

        seed = np.random.SeedSequence([self.options.seed, self._calls]).generate_state(1)[0]
        self._calls += 1
        return int(seed) & 0x7FFFFFFF

    def sample_outcomes(self, p: Any, *, seed: int | None = None) -> Any:
        """Counts ``(rows, 2^q)`` of every measured basis state, before any shot is discarded,
        for rows ``p`` (numpy ``(rows, 2^q)``, each summing to 1) measured ``shots`` times."""
        return sample_outcomes(
            p,
            self.options.shots,
            channel=self.options.noise,
            strength=self.options.noise_strength,
            thermal_population=self.options.thermal_population,
            method=self.method(),
            threads=self.options.threads,
            seed=self._call_seed() if seed is None else seed,
        )

    # The signature every attention backend's attend has (qslm.attention.sampled's too): the
    # Hugging Face attention-function contract, the same by design, not copied logic.
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
        """Measured attention on ``(batch, heads, seq, dim)`` tensors (keys and values may have
        fewer heads). Returns ``(output (batch, heads, seq, dim), weights (batch, heads, seq,
        keys))``."""
        import numpy as np
        import torch

        from qslm.attention.probabilities import probabilities, repeat_kv

        o = self.options
        n = key.shape[-2]
        if n > o.max_keys:
            raise QslmError(
                f"qiskit.sampled: an attention call over {n} keys exceeds the max_keys option "
                f"({o.max_keys}); raise max_keys (at most {HARD_MAX_KEYS}, {NOISY_MAX_KEYS} with "
                "noise) or use a shorter context"
            )
        p, allowed = probabilities(query, key, attention_mask, scaling=scaling, causal=causal)
        v = repeat_kv(value, query.shape[1]).to(p.dtype)
        pd = p.detach()
        flat = pd.reshape(-1, n).to(torch.float64).cpu().numpy()
        ok = allowed.expand_as(pd).reshape(-1, n).cpu().numpy()
        total = flat.sum(1)
        active = np.flatnonzero(total > 0)
        if len(active) > self.max_rows():
            limit = f"{o.max_rows}" if o.max_rows else f"automatic {self.max_rows()}"
            raise QslmError(
                f"qiskit.sampled: an attention call with {len(active)} rows (batch x heads x "
                f"queries) exceeds the max_rows option ({limit}); raise max_rows or use a "
                "smaller evaluation/training batch"
            )
        started = time.perf_counter()
        size = 2 ** self.qubits(n)
        rows = flat[active] / total[active, None]
        counts = self.sample_outcomes(np.pad(rows, ((0, 0), (0, size - n))))
        keep = counts[:, :n] * ok[active]
        kept = keep.sum(1, keepdims=True)
        w = np.zeros_like(flat)
        w[active] = keep / np.maximum(kept, 1)
        self.stats["calls"] += 1
        self.stats["rows"] += len(active)
        self.stats["shots"] += len(active) * o.shots
        self.stats["discarded_shots"] += int(len(active) * o.shots - kept.sum())
        self.stats["seconds"] += time.perf_counter() - started

        w_t = torch.from_numpy(w).to(device=p.device, dtype=p.dtype).reshape(p.shape)
        weights = p + (w_t - pd) if p.requires_grad else w_t
        if dropout and training:
            weights = torch.nn.functional.dropout(weights, p=dropout, training=True)
        out = (weights @ v).to(query.dtype)
        return out, weights.to(query.dtype)


def measurement_circuit(
    qubits: int, channel: str = "none", strength: float = 0.0, thermal_population: float = 0.0
) -> Any:
    """The amplitude-encoding template on ``qubits`` qubits followed by the noise channel; no
    measurement (callers add it, in whichever basis)."""
    from qslm_qiskit.amplitudes import preparation_template
    from qslm_qiskit.channels import channel_errors

    circuit = preparation_template(qubits).copy()
    for error, targets in channel_errors(channel, strength, qubits, thermal_population):
        circuit.append(error.to_instruction(), targets)
    return circuit


def sample_outcomes(
    p: Any,
    shots: int,
    *,
    channel: str = "none",
    strength: float = 0.0,
    thermal_population: float = 0.0,
    method: str = "statevector",
    threads: int = 1,
    seed: int = 0,
) -> Any:
    """Measure ``sum_j sqrt(p_j) |j>`` (after ``channel``) ``shots`` times for each row of ``p``
    (numpy ``(rows, 2^q)``) in one Aer job; returns the counts of each basis state,
    ``(rows, 2^q)`` int64."""
    import numpy as np
    from qiskit_aer.primitives import SamplerV2

    from qslm_qiskit.amplitudes import num_qubits, template_angles

    p = np.asarray(p, dtype=np.float64)
    rows, size = p.shape
    q = num_qubits(size)
    if rows == 0:
        return np.zeros((0, size), dtype=np.int64)
    circuit = measurement_circuit(q, channel, strength, thermal_population)
    circuit.measure_all()
    backend_options = {"method": method, "max_parallel_threads": threads}
    sampler = SamplerV2(
        default_shots=shots, seed=seed, options={"backend_options": backend_options}
    )
    result = sampler.run([(circuit, template_angles(p))]).result()
    raw = result[0].data.meas.array  # (rows, shots, bytes), big-endian bytes; bit i = qubit i
    outcome = np.zeros(raw.shape[:2], dtype=np.int64)
    for b in range(raw.shape[-1]):
        outcome = outcome * 256 + raw[..., b]
    flat = outcome + size * np.arange(rows)[:, None]
    return np.bincount(flat.ravel(), minlength=rows * size).reshape(rows, size)
