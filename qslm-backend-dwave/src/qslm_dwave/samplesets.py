"""From dimod sample sets to qslm results: samples in the Qubo's variable order, seeds, versions."""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING

import numpy as np

from qslm.api import resolve_seed

if TYPE_CHECKING:
    import dimod

    from qslm.api import Qubo

# dwave-samplers' SimulatedAnnealingSampler takes seeds below 2^31 (its TabuSampler 2^32).
SEED_LIMIT = 2**31


def sample_matrix(sampleset: dimod.SampleSet, qubo: Qubo) -> np.ndarray:
    """The (m, n) 0/1 samples of ``sampleset`` with columns in ``qubo.labels`` order (SPIN
    sample sets are converted)."""
    import dimod

    missing = [v for v in qubo.labels if v not in sampleset.variables]
    if missing:
        raise ValueError(f"the sample set lacks {len(missing)} of the problem's variables")
    columns = [sampleset.variables.index(v) for v in qubo.labels]
    x = np.asarray(sampleset.record.sample)[:, columns]
    if sampleset.vartype is dimod.SPIN:
        x = (x + 1) // 2
    return x.astype(np.uint8)


def choose_seed(option_seed: int | None, call_seed: int | None) -> int:
    """The seed a sampler gets: the solver's own ``seed`` option, else the caller's (reduced
    modulo 2^31), else a fresh one; the result records the one used."""
    seed = resolve_seed(option_seed if option_seed is not None else call_seed)
    return seed % SEED_LIMIT


def dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def library(*names: str) -> str:
    """``"dimod 0.12.23, dwave-samplers 1.8.0"`` for the result's provenance."""
    return ", ".join(f"{n} {dist_version(n)}".strip() for n in names)
