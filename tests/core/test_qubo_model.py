"""The Qubo model: energies against brute force, senses, Ising and dimod round trips."""

from __future__ import annotations

import numpy as np
import pytest

from qslm.qubo.model import Qubo
from qslm.testing import all_assignments


def reference_energy(x: np.ndarray, linear: np.ndarray, q: np.ndarray, offset: float) -> float:
    """f(x) = linear . x + x^T Q x + offset, written out as loops."""
    n = len(x)
    total = offset + sum(linear[i] * x[i] for i in range(n))
    for i in range(n):
        for j in range(n):
            total += q[i, j] * x[i] * x[j]
    return total


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    n = 7
    return rng.normal(size=n), rng.normal(size=(n, n)), 1.25  # full, non-symmetric matrix


def test_energies_match_brute_force(problem):
    linear, q, offset = problem
    qubo = Qubo(linear, q, offset)
    x = all_assignments(len(linear))
    want = [reference_energy(row, linear, q, offset) for row in x]
    np.testing.assert_allclose(qubo.energies(x), want)
    # The matrix is stored once per pair, above the diagonal; the diagonal went to linear.
    assert np.all(np.tril(qubo.dense_quadratic()) == 0)
    np.testing.assert_allclose(qubo.linear, linear + np.diag(q))


def test_sparse_storage_gives_the_same_energies(problem):
    sparse = pytest.importorskip("scipy.sparse")
    linear, q, offset = problem
    dense, sp = Qubo(linear, q, offset), Qubo(linear, sparse.csr_array(q), offset)
    assert sp.is_sparse and not dense.is_sparse
    x = all_assignments(len(linear))
    np.testing.assert_allclose(sp.energies(x), dense.energies(x))


def test_sense_keeps_energies_and_as_min_negates(problem):
    linear, q, offset = problem
    qmax = Qubo(linear, q, offset, sense="max")
    x = all_assignments(len(linear))
    np.testing.assert_allclose(qmax.energies(x), Qubo(linear, q, offset).energies(x))
    np.testing.assert_allclose(qmax.as_min().energies(x), -qmax.energies(x))


@pytest.mark.parametrize("sense", ["min", "max"])
def test_ising_round_trip(problem, sense):
    linear, q, offset = problem
    qubo = Qubo(linear, q, offset, sense=sense)
    h, j, off = qubo.to_ising()
    x = all_assignments(len(linear))
    s = 2.0 * x - 1.0
    ising = s @ h + np.einsum("ij,ij->i", s @ j, s) + off
    minimised = qubo.energies(x) * (-1 if sense == "max" else 1)
    np.testing.assert_allclose(ising, minimised)  # the Ising form is the problem to minimise
    back = Qubo.from_ising(h, j, off, sense=sense)
    assert back.sense == sense
    np.testing.assert_allclose(back.energies(x), qubo.energies(x))


@pytest.mark.parametrize("sense", ["min", "max"])
def test_dimod_round_trip(problem, sense):
    dimod = pytest.importorskip("dimod")
    linear, q, offset = problem
    labels = [f"v{i}" for i in range(len(linear))]
    qubo = Qubo(linear, q, offset, labels=labels, sense=sense)
    bqm = qubo.to_bqm()
    assert bqm.vartype is dimod.BINARY and list(bqm.variables) == labels
    x = all_assignments(len(linear))
    sign = -1 if sense == "max" else 1
    np.testing.assert_allclose(
        [bqm.energy(dict(zip(labels, row, strict=True))) for row in x], sign * qubo.energies(x)
    )
    back = Qubo.from_bqm(bqm, sense=sense)
    assert back.labels == tuple(labels)
    np.testing.assert_allclose(back.energies(x), qubo.energies(x))
    spin = Qubo.from_bqm(bqm.change_vartype(dimod.SPIN, inplace=False), sense=sense)
    np.testing.assert_allclose(spin.energies(x), qubo.energies(x))


def test_from_dicts_orders_labels_and_adds_duplicates():
    q = Qubo.from_dicts({"a": 1.0, "b": -2.0}, {("a", "c"): 3.0, ("c", "a"): 1.0}, 0.5)
    assert q.labels == ("a", "b", "c")
    assert q.energy([1, 0, 1]) == 1.0 + 4.0 + 0.5


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="finite"):
        Qubo([1.0, float("nan")])
    with pytest.raises(ValueError, match="unique"):
        Qubo([1.0, 2.0], labels=["a", "a"])
    with pytest.raises(ValueError, match="0/1"):
        Qubo([1.0, 2.0]).energies([[1, -1]])
    with pytest.raises(ValueError, match="shape"):
        Qubo([1.0, 2.0]).energies([[1, 0, 1]])
