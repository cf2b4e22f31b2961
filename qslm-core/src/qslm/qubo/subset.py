"""The subset-selection QUBO behind ``[select]``: relevant, not redundant, exactly k.

The choice is a QUBO over one variable per record::

    maximise  sum_i r_i x_i  -  w * sum_{i<j} R_ij x_i x_j      subject to  sum_i x_i = k

``r_i`` in [0, 1] is relevance: cosine similarity to the query or, with none, to the corpus
centroid (typical records), min-max scaled and multiplied by ``min(1, words / min_words)`` so
headings and fragments rank low. ``R_ij`` in [0, 1] is redundancy: the pair's cosine
similarity above the corpus's mean pair similarity (rescaled so a duplicate is 1), kept for
each record's ``neighbours`` most similar records only, so a record's total penalty stays
bounded whatever k is and the problem stays sparse. ``w`` is ``redundancy_weight``. Exactly-k
is a penalty from :mod:`qslm.qubo.formulate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qslm.qubo.formulate import ConstrainedQubo, ExactlyK, constrain
from qslm.qubo.model import Qubo


@dataclass
class SubsetProblem:
    """The selection QUBO: objective (sense "max"), its exactly-k form, and its parts."""

    objective: Qubo
    problem: ConstrainedQubo
    relevance: np.ndarray
    k: int
    background: float  # mean pair similarity, subtracted from every pair's

    def score(self, masks: np.ndarray) -> np.ndarray:
        """The objective of each 0/1 row."""
        return self.objective.energies(np.atleast_2d(masks))

    def greedy(self) -> np.ndarray:
        """MMR-style: add, k times, the record with the best relevance minus weighted
        redundancy with those already chosen (its marginal gain on the objective)."""
        n = self.objective.num_variables
        q = self.objective
        sym = q.quadratic + q.quadratic.T
        gain = q.linear.copy()
        x = np.zeros(n, dtype=np.uint8)
        for _ in range(self.k):
            i = int(np.argmax(np.where(x == 1, -np.inf, gain)))
            x[i] = 1
            row = sym[[i]].toarray()[0] if hasattr(sym, "toarray") else sym[i]
            gain = gain + row
        return x

    def random(self, draws: int, seed: int) -> np.ndarray:
        n, rng = self.objective.num_variables, np.random.default_rng(seed)
        masks = np.zeros((draws, n), dtype=np.uint8)
        for row in masks:
            row[rng.choice(n, self.k, replace=False)] = 1
        return masks


def subset_problem(
    vectors: Any,
    k: int,
    *,
    query: Any = None,
    lengths: np.ndarray | None = None,
    redundancy_weight: float = 1.0,
    neighbours: int = 10,
    min_words: int = 8,
) -> SubsetProblem:
    """Build the selection QUBO from unit row vectors (dense or scipy sparse), see the module
    docstring. ``lengths`` are word counts for the short-record discount."""
    n = vectors.shape[0]
    total = np.asarray(vectors.sum(axis=0)).reshape(-1)
    target = (
        np.asarray(query.toarray() if hasattr(query, "toarray") else query).reshape(-1)
        if query is not None
        else total
    )
    rel = np.asarray(vectors @ target).reshape(-1) / max(float(np.linalg.norm(target)), 1e-12)
    span = rel.max() - rel.min() if n else 0.0
    rel = (rel - rel.min()) / span if span > 1e-12 else np.ones(n)
    if lengths is not None and min_words > 0:
        rel = rel * np.minimum(1.0, np.asarray(lengths, dtype=np.float64) / min_words)
    # Mean cosine over distinct pairs of unit vectors: (|sum v|^2 - n) / (n (n - 1)).
    background = float((total @ total - n) / (n * (n - 1))) if n > 1 else 0.0
    background = min(max(background, 0.0), 0.99)
    rows, cols, vals = [], [], []
    m = min(neighbours, n - 1)
    for start in range(0, n, 512):
        block = vectors[start : start + 512] @ vectors.T
        block = np.asarray(block.toarray() if hasattr(block, "toarray") else block)
        for r, sims in enumerate(block):
            i = start + r
            sims[i] = -np.inf
            top = np.argpartition(-sims, m - 1)[:m] if m > 0 else np.empty(0, dtype=int)
            red = np.clip((sims[top] - background) / (1 - background), 0.0, 1.0)
            keep = red > 0
            rows += [i] * int(keep.sum())
            cols += top[keep].tolist()
            vals += red[keep].tolist()
    pair = np.zeros((n, n))
    pair[rows, cols] = vals
    pair = np.maximum(pair, pair.T)  # a pair counts once, whichever side found it
    objective = Qubo(rel, -redundancy_weight * np.triu(pair, 1), sense="max")
    problem = constrain(objective, [ExactlyK(k)])
    return SubsetProblem(objective, problem, rel, k, background)
