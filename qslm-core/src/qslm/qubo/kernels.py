"""Compiled single-flip kernels (numba) for the built-in heuristics; needs ``qslm-core[fast]``.

Every kernel works on one replica (one chain or one anneal) in place, on the symmetric
coupling matrix in CSR form (``indptr``, ``indices``, ``data``: row i holds W[i, j] for the
neighbours j of i, both triangles) and the local fields ``g = c + W x``: flipping ``x_i``
changes the energy by ``(1 - 2 x_i) g_i`` and costs O(degree of i) to update the fields.
Kernels release the GIL (``nogil``), so replicas run on several cores from Python threads,
and run a bounded number of steps per call, so the caller looks at the clock between calls.

Random numbers come from a splitmix64 stream whose state is one uint64 per replica, not from
numba's global generator: that one is per thread, so a replica's moves would depend on which
thread ran it; with the state in the replica, a seed gives the same run on any core count.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2^-53
_jit = numba.njit(cache=True, nogil=True)


@_jit
def next_u64(state: np.ndarray) -> np.uint64:
    """The next value of a splitmix64 stream (state: uint64 array of length 1)."""
    state[0] += _GOLDEN
    z = state[0]
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@_jit
def uniform(state: np.ndarray) -> float:
    return float(next_u64(state) >> _S11) * _TO_UNIT


@_jit
def below(state: np.ndarray, k: int) -> int:
    """A uniform integer in [0, k)."""
    return int(next_u64(state) % np.uint64(k))


@_jit
def flip(indptr, indices, data, x, g, i) -> float:
    """Flip ``x[i]``, update the fields; returns the energy change."""
    if x[i] == 0:
        delta = g[i]
        x[i] = 1
        for k in range(indptr[i], indptr[i + 1]):
            g[indices[k]] += data[k]
    else:
        delta = -g[i]
        x[i] = 0
        for k in range(indptr[i], indptr[i + 1]):
            g[indices[k]] -= data[k]
    return delta


@_jit
def apply_flips(indptr, indices, data, x, g, f0, flips) -> np.ndarray:
    """Flip the variables in ``flips`` in turn; the energy after each flip (for tests)."""
    out = np.empty(flips.size)
    f = f0
    for t in range(flips.size):
        f += flip(indptr, indices, data, x, g, flips[t])
        out[t] = f
    return out


@_jit
def descend(indptr, indices, data, x, g, tol) -> float:
    """Steepest descent: flip the variable that lowers the energy most (the first on ties)
    until none does, as the numpy ``steepest_descent``; returns the total energy change."""
    n = x.size
    total = 0.0
    while True:
        best, bi = -tol, -1
        for i in range(n):
            d = g[i] if x[i] == 0 else -g[i]
            if d < best:
                best, bi = d, i
        if bi < 0:
            return total
        total += flip(indptr, indices, data, x, g, bi)


@numba.njit(cache=True, nogil=True, fastmath=True)
def anneal_sweeps(indptr, indices, data, x, g, betas, rng) -> float:
    """Metropolis sweeps, one per entry of ``betas``, visiting the variables in order (as
    dwave-samplers does); returns the energy change. (fastmath: measured 16% faster per read
    on bqp250; the reported energies are recomputed from the samples anyway.)"""
    n = x.size
    total = 0.0
    for beta in betas:
        # exp(-22.2) < 2^-32: a flip costing more is never accepted, so no number is drawn.
        skip = 22.2 / beta
        for i in range(n):
            d = g[i] if x[i] == 0 else -g[i]
            if d <= 0.0 or (d < skip and uniform(rng) < math.exp(-beta * d)):
                step = 1.0 - 2.0 * x[i]  # the change of x_i
                x[i] = 1 - x[i]
                total += d
                for k in range(indptr[i], indptr[i + 1]):
                    g[indices[k]] += step * data[k]
    return total


@_jit
def tabu_steps(
    indptr,
    indices,
    data,
    x,
    g,
    state,
    tabu_until,
    best_x,
    best_g,
    rng,
    params,
    steps,
) -> int:
    """Up to ``steps`` moves of one iterated tabu search; returns the moves made.

    ``state`` (float64): [energy, best energy, iteration, iteration of the last new best,
    restarts, target, iteration of the last restart]. ``params`` (int64): [tenure, tenure
    spread, stall, fewest and most variables a restart flips]. Each move flips the best
    variable that is not tabu, or any
    that gives a new best (aspiration). After ``stall`` moves without a new best the chain
    restarts from its best solution with a few random variables flipped.
    """
    n = x.size
    f, best_f, it, last = state[0], state[1], int(state[2]), int(state[3])
    target, since = state[5], int(state[6])
    tenure, spread, stall, lo, hi = params[0], params[1], params[2], params[3], params[4]
    tol = 1e-9 * max(1.0, abs(best_f))
    done = 0
    while done < steps:
        done += 1
        it += 1
        bd, bi, ties = np.inf, -1, 0
        for i in range(n):
            d = g[i] if x[i] == 0 else -g[i]
            if d <= bd and (tabu_until[i] < it or f + d < best_f - tol):
                # Ties are broken at random (reservoir sampling): integer weights, as in
                # max-cut, make many moves equal, and always the first would cycle.
                if d < bd:
                    bd, bi, ties = d, i, 1
                else:
                    ties += 1
                    if below(rng, ties) == 0:
                        bi = i
        if bi >= 0:
            f += flip(indptr, indices, data, x, g, bi)
            tabu_until[bi] = it + tenure + below(rng, spread)
        if f < best_f - tol:
            best_f, last = f, it
            best_x[:] = x
            best_g[:] = g
            if best_f <= target:
                break
        elif it - max(last, since) >= stall:
            x[:] = best_x
            g[:] = best_g
            f = best_f
            tabu_until[:] = 0
            for _ in range(lo + below(rng, hi - lo + 1)):
                f += flip(indptr, indices, data, x, g, below(rng, n))
            since = it
            state[4] += 1
    state[0], state[1], state[2], state[3], state[6] = f, best_f, it, last, since
    return done
