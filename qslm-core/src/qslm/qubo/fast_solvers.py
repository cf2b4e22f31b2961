"""The compiled engines of ``anneal`` and ``tabu``: one replica per anneal or chain, on CSR
storage, spread over threads (see :mod:`qslm.qubo.fast` for seeds and the clock).

``tabu`` here is an iterated tabu search (as Palubeckis' ITS and Glover, Lu and Hao's
diversification-driven tabu): one-flip moves with tenure and aspiration, and after ``stall``
moves without a new best the chain restarts from its own best solution with a random share of
its variables flipped. The chains share nothing, so a seed reproduces the run on any number
of cores; a ``target`` energy stops every chain once one reaches it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from qslm.qubo import fast

if TYPE_CHECKING:
    from qslm.qubo.model import Qubo
    from qslm.qubo.solver import Deadline


def _kernels() -> Any:
    from qslm.qubo import kernels

    return kernels


def _energy(c: np.ndarray, g: np.ndarray, x: np.ndarray) -> float:
    """``c.x + x.Wx / 2`` (no offset) from the fields ``g = c + W x``."""
    xf = x.astype(np.float64)
    return float(c @ xf + 0.5 * xf @ (g - c))


@dataclass
class Run:
    """What an engine returns: 0/1 samples (rows), whether the clock stopped it, and info."""

    samples: np.ndarray
    timed_out: bool
    info: dict[str, Any]


def anneal(
    q: Qubo,
    *,
    num_reads: int,
    num_sweeps: int,
    beta_range: tuple[float, float] | None,
    polish: bool,
    seed: int,
    deadline: Deadline,
    threads: int | None,
) -> Run:
    """Simulated annealing, one read per replica, sequential Metropolis sweeps over a
    geometric beta schedule, then (with ``polish``) a steepest descent."""
    k = _kernels()
    csr = fast.csr_coupling(q)
    c = q.linear
    hot, cold = beta_range or fast.beta_range(c, csr)
    ratio = (cold / hot) ** (1.0 / max(1, num_sweeps - 1))  # geometric, as the numpy engine
    timed_out = threading.Event()

    def read(r: int) -> tuple[np.ndarray, int] | None:
        if r and deadline.expired():  # the first read always runs, so there is a sample
            timed_out.set()
            return None
        gen, rng = fast.replica_stream(seed, r)
        x = gen.integers(0, 2, size=c.shape[0]).astype(np.int8)
        g = fast.fields(c, csr, x)
        slicer = fast.Slicer()
        done = 0

        def sweeps(steps: int) -> int:
            # The schedule is made a slice at a time: num_sweeps may be huge.
            betas = hot * ratio ** np.arange(done, done + steps, dtype=np.float64)
            k.anneal_sweeps(*csr, x, g, betas, rng)
            return steps

        if not np.isfinite(deadline.at):  # no clock to watch: one call does every sweep
            done = sweeps(num_sweeps)
        while done < num_sweeps:
            if deadline.expired():
                timed_out.set()
                break
            done += slicer.run(sweeps, num_sweeps - done)
        if polish:
            k.descend(*csr, x, g, 1e-9 * max(1.0, float(np.abs(g).max(initial=0.0))))
        return x, done

    reads = fast.run_replicas(read, num_reads, threads)
    samples = np.array([x for x, _ in reads], dtype=np.uint8)
    info = {
        "engine": "numba",
        "num_reads": len(reads),
        "sweeps": min(d for _, d in reads),
        "beta_range": [hot, cold],
    }
    return Run(samples, timed_out.is_set(), info)


@dataclass
class TabuSettings:
    num_chains: int
    iterations: int
    patience: int
    tenure: int
    spread: int
    stall: int
    restart_flips: tuple[int, int]
    target: float  # in the minimisation form, offset removed; -inf: none


def tabu(q: Qubo, settings: TabuSettings, *, seed: int, deadline: Deadline, threads: int | None):
    """Iterated tabu search, one chain per replica; returns a :class:`Run` holding each
    chain's best solution."""
    k = _kernels()
    csr = fast.csr_coupling(q)
    c = q.linear
    n = c.shape[0]
    s = settings
    params = np.array([s.tenure, max(1, s.spread), s.stall, *s.restart_flips], dtype=np.int64)
    found = threading.Event()
    timed_out = threading.Event()
    started = time.perf_counter()

    def chain(r: int) -> tuple[np.ndarray, float, float, int, int]:
        gen, rng = fast.replica_stream(seed, r)
        x = gen.integers(0, 2, size=n).astype(np.int8)
        g = fast.fields(c, csr, x)
        f = _energy(c, g, x)
        state = np.array([f, f, 0.0, 0.0, 0.0, s.target, 0.0])
        tabu_until = np.zeros(n, dtype=np.int64)
        best_x, best_g = x.copy(), g.copy()
        found_at = time.perf_counter() - started
        slicer = fast.Slicer(8)
        while not found.is_set():
            it, last = int(state[2]), int(state[3])
            if it >= s.iterations or it - last >= s.patience:
                break
            if deadline.expired():
                timed_out.set()
                break
            before = state[1]
            limit = min(s.iterations - it, s.patience - (it - last))
            slicer.run(
                lambda steps: k.tabu_steps(
                    *csr, x, g, state, tabu_until, best_x, best_g, rng, params, steps
                ),
                limit,
            )
            if state[1] < before:
                found_at = time.perf_counter() - started
            if state[1] <= s.target:
                found.set()
        return best_x, float(state[1]), found_at, int(state[2]), int(state[4])

    chains = fast.run_replicas(chain, s.num_chains, threads)
    best = min(range(len(chains)), key=lambda i: chains[i][1])
    info = {
        "engine": "numba",
        "num_chains": s.num_chains,
        "iterations": [ch[3] for ch in chains],
        "restarts": sum(ch[4] for ch in chains),
        "tenure": [s.tenure, s.tenure + max(1, s.spread) - 1],
        "time_to_best_s": chains[best][2],
    }
    if np.isfinite(s.target):
        info["target_reached"] = bool(found.is_set())
    samples = np.array([ch[0] for ch in chains], dtype=np.uint8)
    return Run(samples, timed_out.is_set(), info)
