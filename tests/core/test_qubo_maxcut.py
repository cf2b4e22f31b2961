"""Max-cut as a QUBO: energies equal cut weights (checked by brute force on small graphs), and
the G-set reader."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qslm.errors import ConfigError
from qslm.qubo.maxcut import Graph, cut_value, maxcut_qubo, read_gset
from qslm.testing import all_assignments, brute_force


def _random_graph(n: int, p: float, seed: int, signed: bool) -> Graph:
    rng = np.random.default_rng(seed)
    pairs = [(i, j) for i, j in itertools.combinations(range(n), 2) if rng.random() < p]
    rows, cols = (np.array(a, dtype=np.int64) for a in zip(*pairs, strict=True))
    weights = rng.choice([-1.0, 1.0], size=len(pairs)) if signed else rng.integers(1, 5, len(pairs))
    return Graph(n, rows, cols, weights.astype(np.float64))


@pytest.mark.parametrize(("seed", "signed"), [(0, False), (1, True), (2, False)])
def test_every_energy_is_the_cut_and_the_optimum_is_the_max_cut(seed, signed):
    g = _random_graph(10, 0.5, seed, signed)
    q = maxcut_qubo(g)
    assert q.sense == "max"
    x = all_assignments(10)
    cuts = np.array([cut_value(g, s) for s in x])
    np.testing.assert_allclose(q.energies(x), cuts)
    best, sample = brute_force(q)
    assert best == cuts.max() == cut_value(g, sample)


def test_triangle_and_parallel_edges():
    # A triangle cuts at most 2 edges; parallel edges add; a self-loop never counts.
    g = Graph(3, np.array([0, 1, 0, 0, 2]), np.array([1, 2, 2, 1, 2]), np.ones(5))
    q = maxcut_qubo(g)
    assert brute_force(q)[0] == 3.0  # edge (0, 1) twice + one more
    assert q.energy([1, 0, 0]) == cut_value(g, np.array([1, 0, 0])) == 3.0


def test_read_gset(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text("4 3 \n1 2 1\n2 3 -1\n4 1 2\n")
    g = read_gset(path)
    assert g.n == 4 and g.num_edges == 3
    assert g.rows.tolist() == [0, 1, 3] and g.cols.tolist() == [1, 2, 0]
    assert g.weights.tolist() == [1.0, -1.0, 2.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("4\n", "line 1: expected 'n m'"),
        ("3 2\n1 2 1\n", "says 2 edges, the file has 1"),
        ("3 1\n1 x 1\n", "line 2: expected 'i j weight'"),
        ("3 1\n1 4 1\n", "line 2: node out of range 1..3"),
        ("3 1\n1 2 1 5\n", "line 2: expected 'i j weight'"),
    ],
)
def test_read_gset_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_gset(path)


def test_gset_g1_best_known_cut_is_a_qubo_energy(shared_dir):
    path = shared_dir / "benchmarks" / "maxcut" / "G1.txt"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    g = read_gset(path)
    assert (g.n, g.num_edges) == (800, 19176)
    q = maxcut_qubo(g)
    x = np.random.default_rng(0).integers(0, 2, size=800)
    assert q.energy(x) == cut_value(g, x)
    assert q.energy(np.zeros(800)) == 0 and q.energy(np.ones(800)) == 0
