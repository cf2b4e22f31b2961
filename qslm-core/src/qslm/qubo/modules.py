"""Which modules to adapt: a budgeted, redundancy-aware choice as a constrained QUBO.

Given M modules (e.g. the q/k/v/o projections of each layer) with an importance score, a
parameter count and pairwise redundancy, choose the set to keep trainable::

    maximise  sum_i importance_i x_i - redundancy_weight * sum_{i<j} redundancy_ij x_i x_j
    subject to  sum_i params_i x_i <= budget

The budget becomes slack bits (:class:`qslm.qubo.formulate.AtMost`), so the penalised optimum
is a feasible choice. A training callback builds this every few steps from its own scores
(gradient norms, Fisher information, ...), solves it with any solver and applies
:meth:`ModuleSelection.decode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qslm.qubo.formulate import AtMost, ConstrainedQubo, Outcome, constrain
from qslm.qubo.model import Qubo


@dataclass(frozen=True)
class ModuleChoice:
    """The decoded answer: the modules to train, their parameters and the objective.

    ``feasible`` is whether the choice fits the budget; ``repaired`` whether the solver's
    sample broke the budget and was repaired (items with the worst benefit per parameter
    dropped)."""

    names: tuple[str, ...]
    params: int
    objective: float
    feasible: bool
    repaired: bool
    mask: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "modules": list(self.names),
            "params": self.params,
            "objective": self.objective,
            "feasible": self.feasible,
            "repaired": self.repaired,
        }


@dataclass(frozen=True)
class ModuleSelection:
    """The constrained problem of :func:`module_selection` and how to read its answers."""

    names: tuple[str, ...]
    params: np.ndarray
    budget: int
    problem: ConstrainedQubo

    @property
    def qubo(self) -> Qubo:
        """The penalised Qubo (modules first, then slack bits) to hand to a solver."""
        return self.problem.qubo

    def check(self, sample: Any) -> bool:
        """Whether a sample's choice fits the budget (the ``check`` of solve_with_fallback)."""
        return self.problem.check(sample)

    def decode(self, sample: Any) -> ModuleChoice:
        """The chosen modules of a solver sample, repaired if it broke the budget."""
        out: Outcome = self.problem.resolve(sample)
        mask = out.sample.astype(bool)
        return ModuleChoice(
            names=tuple(n for n, m in zip(self.names, mask, strict=True) if m),
            params=int(self.params[mask].sum()),
            objective=out.objective,
            feasible=out.feasible,
            repaired=out.repaired,
            mask=mask,
        )


def module_selection(
    names: Sequence[str],
    importance: Sequence[float] | np.ndarray,
    params: Sequence[int] | np.ndarray,
    budget: int,
    redundancy: Any = None,
    *,
    redundancy_weight: float = 1.0,
) -> ModuleSelection:
    """Build the budgeted module choice (module docstring).

    ``redundancy`` is a symmetric (M, M) matrix (its diagonal is ignored), e.g. the cosine
    similarity of the modules' gradients; None means independent modules. Parameter counts and
    the budget are integers."""
    names = tuple(str(n) for n in names)
    m = len(names)
    imp = np.asarray(importance, dtype=np.float64).reshape(-1)
    p = np.asarray(params).reshape(-1)
    if imp.shape != (m,) or p.shape != (m,):
        raise ValueError(f"importance and params need one value per module ({m})")
    if len(set(names)) != m:
        raise ValueError("module names must be unique")
    if not np.issubdtype(p.dtype, np.integer) or (p < 0).any():
        raise ValueError("params must be non-negative integers")
    if int(budget) != budget or budget < 0:
        raise ValueError(f"budget must be a non-negative integer, got {budget!r}")
    if redundancy is None:
        quad = np.zeros((m, m))
    else:
        r = np.asarray(redundancy, dtype=np.float64)
        if r.shape != (m, m) or not np.allclose(r, r.T):
            raise ValueError(f"redundancy must be a symmetric ({m}, {m}) matrix")
        quad = -redundancy_weight * np.triu(r, 1)
    objective = Qubo(imp, quad, labels=names, sense="max")
    problem = constrain(objective, [AtMost(p.astype(np.float64), int(budget))])
    return ModuleSelection(names, p.astype(np.int64), int(budget), problem)
