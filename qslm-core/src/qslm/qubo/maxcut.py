"""Max-cut as a QUBO, and the G-set graph format.

A cut puts each node on side 0 or 1 (``x_i``); an edge (i, j) of weight w is cut when its ends
differ, ``x_i + x_j - 2 x_i x_j`` = 1. So the cut weight is the QUBO (sense "max")
``sum_edges w (x_i + x_j) - 2 w x_i x_j``, with the energy of a sample equal to its cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qslm.errors import ConfigError
from qslm.qubo.model import Qubo


@dataclass(frozen=True)
class Graph:
    """An undirected weighted graph: ``n`` nodes 0..n-1 and edge arrays (one entry per edge)."""

    n: int
    rows: np.ndarray
    cols: np.ndarray
    weights: np.ndarray

    @property
    def num_edges(self) -> int:
        return int(self.rows.shape[0])


def maxcut_qubo(graph: Graph) -> Qubo:
    """The QUBO (sense "max") whose energy of a 0/1 side assignment is its cut weight.
    Parallel edges add up; a self-loop is never cut and contributes nothing."""
    r, c, w = graph.rows, graph.cols, graph.weights
    keep = r != c
    r, c, w = r[keep], c[keep], w[keep]
    linear = np.bincount(r, weights=w, minlength=graph.n) + np.bincount(
        c, weights=w, minlength=graph.n
    )
    return Qubo.from_coo(graph.n, linear, r, c, -2.0 * w, sense="max")


def cut_value(graph: Graph, sides: np.ndarray) -> float:
    """The weight of the edges whose ends are on different sides."""
    x = np.asarray(sides).astype(bool)
    return float(graph.weights[x[graph.rows] != x[graph.cols]].sum())


def read_gset(path: str | Path) -> Graph:
    """Read a G-set / rudy edge list: a first line ``n m``, then m lines ``i j w`` with
    1-indexed nodes."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    body = [(k + 1, line.split()) for k, line in enumerate(lines) if line.strip()]
    if not body:
        raise ConfigError(f"{path}: empty file, expected a first line 'n m'")
    lineno, head = body[0]
    try:
        n, m = (int(t) for t in head)
    except ValueError:
        raise ConfigError(
            f"{path}: line {lineno}: expected 'n m' (nodes, edges), got {lines[lineno - 1]!r}"
        ) from None
    edges = body[1:]
    if len(edges) != m:
        raise ConfigError(f"{path}: the first line says {m} edges, the file has {len(edges)}")
    rows, cols, weights = np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m)
    for k, (lineno, parts) in enumerate(edges):
        try:
            i, j, w = int(parts[0]), int(parts[1]), float(parts[2])
            if len(parts) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise ConfigError(
                f"{path}: line {lineno}: expected 'i j weight', got {lines[lineno - 1]!r}"
            ) from None
        if not (1 <= i <= n and 1 <= j <= n):
            raise ConfigError(f"{path}: line {lineno}: node out of range 1..{n}")
        if not np.isfinite(w):
            raise ConfigError(f"{path}: line {lineno}: the weight must be finite, got {w}")
        rows[k], cols[k], weights[k] = i - 1, j - 1, w
    return Graph(n, rows, cols, weights)
