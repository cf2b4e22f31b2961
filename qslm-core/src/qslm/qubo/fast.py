"""Drivers of the compiled kernels (:mod:`qslm.qubo.kernels`): sparse storage, replicas on
threads, seeds and the clock.

numba is an optional extra (``pip install qslm-core[fast]``), not a core dependency: each
numba release supports a narrow band of numpy versions, so requiring it would cap the numpy a
user of the core may have (and add ~50 MB of LLVM). Without it ``anneal`` and ``tabu`` run
their numpy code, which stays as the reference the kernels are tested against.

Replicas are independent: each has its own seed (spawned from the call's seed) and random
stream, so the same seed gives the same samples whatever the number of threads, unless a
time limit cuts the run short. A kernel call does a bounded number of steps sized to take
about :data:`SLICE_S` seconds, and the clock is read between calls, so a time limit is met to
within a few milliseconds (plus the final polish).
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from qslm.resources import usable_cpus

if TYPE_CHECKING:
    from qslm.qubo.model import Qubo

SLICE_S = 0.002  # target duration of one kernel call


def available() -> bool:
    """Whether numba is installed (the kernels themselves compile on first use)."""
    return importlib.util.find_spec("numba") is not None


def csr_coupling(q: Qubo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The symmetric pair weights W (zero diagonal) as CSR arrays (indptr, indices, data)."""
    from scipy import sparse

    upper = sparse.csr_array(q.quadratic, dtype=np.float64)
    w = sparse.csr_array(upper + upper.T)
    w.eliminate_zeros()
    w.sort_indices()
    return (
        np.ascontiguousarray(w.indptr, dtype=np.int64),
        np.ascontiguousarray(w.indices, dtype=np.int64),
        np.ascontiguousarray(w.data, dtype=np.float64),
    )


def fields(linear: np.ndarray, csr: tuple, x: np.ndarray) -> np.ndarray:
    """``c + W x`` for one 0/1 vector."""
    from scipy import sparse

    indptr, indices, data = csr
    n = linear.shape[0]
    w = sparse.csr_array((data, indices, indptr), shape=(n, n))
    return linear + w @ x.astype(np.float64)


def beta_range(linear: np.ndarray, csr: tuple) -> tuple[float, float]:
    """:func:`qslm.qubo.anneal.default_beta_range` computed from CSR storage (no dense n x n)."""
    indptr, _, data = csr
    n = linear.shape[0]
    counts = np.diff(indptr)
    rows = np.repeat(np.arange(n), counts)
    abs_j = np.abs(data) / 4
    h = linear / 2 + np.bincount(rows, weights=data / 4, minlength=n)
    total = np.abs(h) + np.bincount(rows, weights=abs_j, minlength=n)
    max_field = float(total.max()) if n else 0.0
    hot = 1.0 if max_field == 0 else float(np.log(2) / (2 * max_field))
    smallest_j = np.full(n, np.inf)
    has = counts > 0
    if data.size:
        smallest_j[has] = np.minimum.reduceat(abs_j, indptr[:-1][has])
    gaps = np.where(total > 0, np.minimum(smallest_j, total), np.inf)
    gaps = gaps[np.isfinite(gaps)]
    if gaps.size == 0:
        return hot, hot
    smallest = float(gaps.min())
    count = int(np.sum(gaps == smallest))
    return hot, max(float(np.log(count / 0.01) / (2 * smallest)), hot)


def replica_stream(seed: int, replica: int) -> tuple[np.random.Generator, np.ndarray]:
    """Replica ``replica``'s numpy Generator (initial states) and kernel stream state, from
    ``seed`` and the index only (``SeedSequence(seed).spawn(k)[replica]``, made on demand)."""
    gen = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(replica,)))
    return gen, np.array([gen.integers(0, 2**63)], dtype=np.uint64)


class Slicer:
    """Sizes kernel calls to take about ``SLICE_S`` seconds each: the step count doubles or
    halves after each call from the time that call took."""

    def __init__(self, steps: int = 1) -> None:
        self.steps = steps

    def run(self, call: Callable[[int], Any], limit: int) -> Any:
        """``call(steps)`` with at most ``limit`` steps."""
        steps = max(1, min(self.steps, limit))
        t0 = time.perf_counter()
        out = call(steps)
        took = time.perf_counter() - t0
        if took < SLICE_S / 2 and steps == self.steps:
            self.steps = min(self.steps * 2, 1 << 30)
        elif took > SLICE_S * 2 and self.steps > 1:
            self.steps //= 2
        return out


def run_replicas(work: Callable[[int], Any], count: int, threads: int | None) -> list[Any]:
    """``work(k)`` for k in range(count) over ``threads`` threads (default: the usable
    cores), thread t taking k = t, t + threads, ...; a thread stops at the first None (the
    clock ran out). The results in replica order, Nones left out."""
    workers = max(1, min(count, threads or usable_cpus()))

    def share(first: int) -> list[tuple[int, Any]]:
        out = []
        for k in range(first, count, workers):
            result = work(k)
            if result is None:
                break
            out.append((k, result))
        return out

    if workers == 1:
        return [r for _, r in share(0)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qslm-replica") as pool:
        done = [item for part in pool.map(share, range(workers)) for item in part]
    return [r for _, r in sorted(done, key=lambda item: item[0])]


FAST_MAX_VARIABLES = 2_000_000  # CSR storage: memory grows with the pairs, not n^2


def resolve_engine(engine: str, solver: str) -> str:
    """ "numba" or "numpy" for an ``engine`` option ("auto": numba when installed)."""
    if engine == "numpy":
        return "numpy"
    if available():
        return "numba"
    if engine == "numba":
        from qslm.errors import ConfigError

        raise ConfigError(
            f"QUBO solver {solver!r}: engine 'numba' needs numba, which is not installed: "
            "pip install 'qslm-core[fast]'"
        )
    return "numpy"


_COMPILED: set[str] = set()


def compile_first(solver: Any) -> float:
    """Compile ``solver``'s kernels on a three-variable problem before its clock starts, once per
    process; the seconds it took (0.0 when already compiled or on the numpy engine).

    numba compiles on a kernel's first call, and from an empty cache (a fresh install) that
    takes about 10 s for ``tabu``: counted against the time limit it left the first solve of a
    process no time to search (the quickstart's ``[select]``, 10 s, came back infeasible on a
    busy machine). A time limit is the search's budget, so compilation is kept out of it and
    reported apart (``timings["compile_s"]``)."""
    key = type(solver).__qualname__
    if key in _COMPILED or resolve_engine(solver.options.engine, solver.name) != "numba":
        return 0.0
    _COMPILED.add(key)  # first, so that the tiny solve below does not come back here
    from qslm.qubo.model import Qubo

    started = time.perf_counter()
    tiny = Qubo([1.0, -2.0, 1.0], np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 0.0]]))
    type(solver)(type(solver).Options(engine="numba")).solve(tiny, seed=0)
    return time.perf_counter() - started


def max_variables(numpy_limit: int) -> int:
    """A solver's size limit: the numpy engine's dense limit, or CSR's with numba."""
    return FAST_MAX_VARIABLES if available() else numpy_limit
