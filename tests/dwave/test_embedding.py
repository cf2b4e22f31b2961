"""The embedding pre-flight: the figures the plan states, and the lower bounds that refuse."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from qslm.qubo.model import Qubo
from qslm.testing import random_qubo
from qslm_dwave.embedding import NOMINAL, TargetGraph, estimate, largest_clique


@pytest.mark.parametrize("topology", sorted(NOMINAL))
def test_the_nominal_targets_match_dwaves_graphs(topology):
    import dwave.graphs as dg

    t = NOMINAL[topology]
    graph = {"pegasus": dg.pegasus_graph, "zephyr": dg.zephyr_graph, "chimera": dg.chimera_graph}[
        topology
    ](*t.shape)
    assert graph.number_of_nodes() == t.qubits
    assert graph.number_of_edges() == t.couplers
    assert max(d for _, d in graph.degree()) == t.degree
    target = TargetGraph(t.system, topology, t.shape, graph)
    assert largest_clique(target, t.clique + 1) == t.clique
    from minorminer import busclique

    chains = busclique.find_clique_embedding(t.clique, graph, use_cache=False, seed=0)
    assert sum(len(c) for c in chains.values()) == t.clique_qubits


def line_target(n: int) -> TargetGraph:
    return TargetGraph("line", "path", (n,), nx.path_graph(n))


def test_estimate_counts_density_and_degree():
    q = random_qubo(30, density=0.2, seed=1)
    est = estimate(q, line_target(100))
    pairs = np.count_nonzero(q.quadratic)
    assert est.variables == 30 and est.interactions == pairs
    assert est.density == pytest.approx(2 * pairs / (30 * 29))


def test_estimate_refuses_what_provably_cannot_fit():
    # On a path (the bound takes D = 3 there) a chain of L qubits reaches L + 2 others: the
    # hub of a 4-leaf star needs a chain of 2, and 5 variables need 6 qubits.
    star = Qubo.from_coo(5, np.zeros(5), [0, 0, 0, 0], [1, 2, 3, 4], np.ones(4))
    est = estimate(star, line_target(5))
    assert not est.fits and est.min_physical_qubits == 6  # hub needs 2, leaves 1 each
    assert estimate(star, line_target(6)).fits
    too_many = estimate(random_qubo(7, density=0.1), line_target(6))
    assert not too_many.fits and "6 working qubits" in too_many.reason


def test_estimate_counts_couplers():
    triangle = Qubo([0, 0, 0], [[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    target = TargetGraph("two edges", "custom", (), nx.Graph([(0, 1), (1, 2), (3, 4)]))
    target.graph.remove_edge(3, 4)  # 5 qubits, 2 couplers: each interaction needs its own
    est = estimate(triangle, target)
    assert not est.fits and "couplers" in est.reason
