"""Fitting a QUBO onto a QPU's qubit graph: the targets, a cheap estimate, the embedding search.

A D-Wave QPU couples each qubit to at most 15 (Pegasus), 20 (Zephyr) or 6 (Chimera) others, so
a variable with more interactions becomes a *chain* of qubits. Before any QPU time is spent,
:func:`estimate` bounds what the problem needs from its size and degrees and refuses problems
that cannot fit; :func:`find_embedding` then searches (minorminer's heuristic, or busclique's
clique embedding, which suits dense problems) and reports chain statistics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from qslm_dwave.errors import EmbeddingImpossible, EmbeddingNotFound

if TYPE_CHECKING:
    import networkx as nx

    from qslm.api import Qubo

Method = Literal["auto", "minorminer", "clique"]

# At or above this density "auto" tries the clique embedding first; at or above _NEAR_COMPLETE
# a problem that has no clique embedding is refused without a minorminer search, which on such
# graphs only runs out its timeout.
_DENSE = 0.5
_NEAR_COMPLETE = 0.9


@dataclass(frozen=True)
class NominalTarget:
    """A QPU family's full-yield graph, for the plan (a real QPU lacks a few qubits)."""

    system: str
    topology: str
    shape: tuple[int, ...]
    qubits: int
    couplers: int
    degree: int
    clique: int  # largest complete graph with a clique embedding
    clique_qubits: int  # qubits that clique embedding uses

    def describe(self) -> str:
        shape = "x".join(str(s) for s in self.shape)
        return (
            f"{self.system} ({self.topology} {shape}): {self.qubits} qubits, "
            f"{self.couplers} couplers, up to {self.degree} couplers a qubit; complete "
            f"problems of up to {self.clique} variables embed (on {self.clique_qubits} "
            f"qubits), sparser problems larger"
        )


# Computed with dwave.graphs and minorminer.busclique on the full-yield graphs (a test
# recomputes them).
NOMINAL: dict[str, NominalTarget] = {
    "pegasus": NominalTarget("Advantage", "pegasus", (16,), 5640, 40484, 15, 180, 3000),
    "zephyr": NominalTarget("Advantage2", "zephyr", (12, 4), 4800, 45864, 20, 184, 2392),
    "chimera": NominalTarget("D-Wave 2000Q", "chimera", (16, 16, 4), 2048, 6016, 6, 64, 1088),
}


@dataclass
class TargetGraph:
    """The working graph of one QPU (or of a mock of one)."""

    name: str
    topology: str
    shape: tuple[int, ...]
    graph: nx.Graph

    @property
    def qubits(self) -> int:
        return self.graph.number_of_nodes()

    @property
    def couplers(self) -> int:
        return self.graph.number_of_edges()

    @property
    def degree(self) -> int:
        return max((d for _, d in self.graph.degree()), default=0)

    def describe(self) -> str:
        shape = "x".join(str(s) for s in self.shape)
        return (
            f"{self.name} ({self.topology} {shape}, {self.qubits} working qubits, "
            f"{self.couplers} couplers)"
        )


def target_of(sampler: Any) -> TargetGraph:
    """The graph of a structured dimod sampler (DWaveSampler, MockDWaveSampler, ...)."""
    import networkx as nx

    props = getattr(sampler, "properties", {}) or {}
    topology = props.get("topology", {}) or {}
    if hasattr(sampler, "to_networkx_graph"):
        graph = sampler.to_networkx_graph()
    else:
        graph = nx.Graph()
        graph.add_nodes_from(sampler.nodelist)
        graph.add_edges_from(sampler.edgelist)
    solver = getattr(sampler, "solver", None)
    name = getattr(solver, "name", None) or props.get("chip_id") or type(sampler).__name__
    return TargetGraph(
        str(name), str(topology.get("type", "unknown")), tuple(topology.get("shape", ())), graph
    )


def _pairs(qubo: Qubo) -> tuple[np.ndarray, np.ndarray]:
    if qubo.is_sparse:
        coo = qubo.quadratic.tocoo()
        keep = coo.data != 0
        return coo.row[keep], coo.col[keep]
    return np.nonzero(qubo.quadratic)


@dataclass
class Estimate:
    """What a problem needs from a QPU graph, bounded from below without searching."""

    variables: int
    interactions: int
    density: float
    max_degree: int
    min_physical_qubits: int
    qubits: int
    couplers: int
    fits: bool
    reason: str = ""

    def as_info(self) -> dict[str, Any]:
        return {
            "variables": self.variables,
            "interactions": self.interactions,
            "density": round(self.density, 4),
            "max_degree": self.max_degree,
            "min_physical_qubits": self.min_physical_qubits,
        }


def estimate(qubo: Qubo, target: TargetGraph) -> Estimate:
    """Lower bounds from the problem's degrees: a chain of L qubits, each with at most D
    couplers, reaches at most ``L (D - 2) + 2`` other qubits, so a variable with ``k``
    interactions needs ``L >= (k - 2) / (D - 2)`` qubits, and each interaction its own
    coupler. ``fits`` is False only when the problem provably cannot embed."""
    n = qubo.num_variables
    rows, cols = _pairs(qubo)
    m = int(rows.size)
    degree = np.bincount(rows, minlength=n) + np.bincount(cols, minlength=n)
    d = max(target.degree, 3)
    chains = np.maximum(1, np.ceil((degree - 2) / (d - 2))).astype(np.int64)
    need = int(chains.sum())
    density = 2 * m / (n * (n - 1)) if n > 1 else 0.0
    result = Estimate(
        n, m, density, int(degree.max(initial=0)), need, target.qubits, target.couplers, True
    )
    if n > target.qubits:
        result.fits, result.reason = (
            False,
            (f"{n} variables but only {target.qubits} working qubits"),
        )
    elif need > target.qubits:
        result.fits, result.reason = (
            False,
            (
                f"its {m} interactions (up to {result.max_degree} on one variable) need at least "
                f"{need} physical qubits in chains, more than the {target.qubits} working qubits"
            ),
        )
    elif m + (need - n) > target.couplers:
        result.fits, result.reason = (
            False,
            (
                f"its {m} interactions and chains need at least {m + need - n} couplers, more "
                f"than the {target.couplers} working couplers"
            ),
        )
    return result


def refuse_if_impossible(solver: str, qubo: Qubo, target: TargetGraph) -> Estimate:
    """The estimate, or :class:`EmbeddingImpossible` naming the reason (before any QPU use)."""
    est = estimate(qubo, target)
    if not est.fits:
        raise EmbeddingImpossible(
            f"{solver}: the problem cannot be embedded on {target.describe()}: {est.reason}; "
            "use a classical or hybrid solver (e.g. 'dwave.hybrid', 'dwave.sa', 'anneal')"
        )
    return est


@dataclass
class Embedding:
    """A found embedding and its chain statistics."""

    chains: dict[Any, tuple[Any, ...]]
    method: str
    seconds: float
    tried: list[str] = field(default_factory=list)

    @property
    def physical_qubits(self) -> int:
        return sum(len(c) for c in self.chains.values())

    @property
    def max_chain_length(self) -> int:
        return max((len(c) for c in self.chains.values()), default=0)

    def as_info(self) -> dict[str, Any]:
        n = len(self.chains)
        return {
            "method": self.method,
            "physical_qubits": self.physical_qubits,
            "max_chain_length": self.max_chain_length,
            "mean_chain_length": round(self.physical_qubits / n, 3) if n else 0.0,
            "search_s": round(self.seconds, 6),
        }


def _has_clique_search(target: TargetGraph) -> bool:
    """busclique needs a D-Wave topology graph (with its coordinates)."""
    return target.graph.graph.get("family") in ("chimera", "pegasus", "zephyr")


def _clique(labels: list[Any], target: TargetGraph, seed: int) -> dict[Any, Any]:
    from minorminer import busclique

    if not _has_clique_search(target):
        return {}
    try:
        # No file cache: the search takes well under a second on today's QPU graphs.
        return busclique.find_clique_embedding(labels, target.graph, use_cache=False, seed=seed)
    except (ValueError, NotImplementedError):  # an unsupported graph shape
        return {}


def largest_clique(target: TargetGraph, upper: int, seed: int = 0) -> int:
    """The largest k <= upper with a clique embedding of K_k on the target (binary search)."""
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _clique(list(range(mid)), target, seed):
            lo = mid
        else:
            hi = mid - 1
    return lo


def find_embedding(
    qubo: Qubo,
    target: TargetGraph,
    *,
    method: Method,
    timeout: float,
    seed: int,
    solver: str = "dwave.qpu",
) -> Embedding:
    """Search for an embedding within ``timeout`` seconds; :class:`EmbeddingNotFound` if none.

    "auto" tries the clique embedding first for dense problems (density >= 0.5) and
    minorminer first for sparse ones, then the other.
    """
    import minorminer

    started = time.perf_counter()
    labels = list(qubo.labels)
    rows, cols = _pairs(qubo)
    n = len(labels)
    density = 2 * rows.size / (n * (n - 1)) if n > 1 else 0.0
    # Self-loops keep variables without interactions in the embedding (as EmbeddingComposite).
    source = [(labels[i], labels[j]) for i, j in zip(rows.tolist(), cols.tolist(), strict=True)]
    source += [(v, v) for v in labels]
    if method == "auto" and not _has_clique_search(target):
        order = ["minorminer"]
    elif method == "auto":
        order = ["clique", "minorminer"] if density >= _DENSE else ["minorminer", "clique"]
        if density >= _NEAR_COMPLETE:
            order = ["clique"]
    else:
        order = [method]
    tried = []
    for name in order:
        if name == "clique":
            chains = _clique(labels, target, seed)
        else:
            left = timeout - (time.perf_counter() - started)
            chains = (
                minorminer.find_embedding(
                    source, target.graph.edges, random_seed=seed, timeout=max(left, 0.1)
                )
                if left > 0
                else {}
            )
        tried.append(name)
        if chains:
            return Embedding(
                {v: tuple(c) for v, c in chains.items()}, name, time.perf_counter() - started, tried
            )
    seconds = time.perf_counter() - started
    clique = largest_clique(target, n) if _has_clique_search(target) else None
    detail = (
        f"; the largest complete problem with a clique embedding there has {clique} variables"
        if clique is not None
        else ""
    )
    if order == ["clique"] and method == "auto":
        detail += (
            " and minorminer was not tried: on a near-complete problem it only runs out its timeout"
        )
    raise EmbeddingNotFound(
        f"{solver}: no minor embedding of the problem ({n} variables, {rows.size} "
        f"interactions, density {density:.2f}) on {target.describe()} found by "
        f"{' then '.join(tried)} in {seconds:.3g} s{detail}; use a smaller problem, "
        f"raise embedding_timeout, or use 'dwave.hybrid' or a classical solver"
    )


def physical_qubit_note(topology: str | None) -> list[str]:
    """Plan lines describing the target graph(s) and their size limits."""
    if topology is not None:
        return [f"target graph: {NOMINAL[topology].describe()}"]
    return [
        f"target graph: the QPU with the most working qubits available to the account, "
        f"such as {t.describe()}"
        for t in (NOMINAL["pegasus"], NOMINAL["zephyr"])
    ]
