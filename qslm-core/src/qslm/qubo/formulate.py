"""Constraints as QUBO penalties, with feasibility checks and repairs.

A constrained problem is an objective :class:`~qslm.qubo.model.Qubo` over n decision variables
plus constraints on them. :func:`constrain` adds each constraint as ``A_c * P_c(x, s)``, where
``P_c >= 0`` is zero exactly when the constraint holds (with the right slack bits ``s``, for
budgets) and at least 1 whenever it is broken, and returns a :class:`ConstrainedQubo`: the
penalised Qubo (decision variables first, then slack bits) that any solver takes, ``check``
(usable as ``check=`` of :func:`qslm.qubo.portfolio.solve_with_fallback`) and ``repair``.

Why breaking a constraint never pays. Let ``D_i = |h_i| + sum_j |Q_ij|`` (``h`` the linear and
``Q`` the pair weights of the objective): flipping ``x_i`` changes the objective by at most
``D_i``, whatever the other variables are.

* exactly-k (and one-hot, k = 1): ``P = (sum_S x - k)^2``. A sample ``d`` away from k pays
  ``A d^2``; adding or removing ``d`` of its variables makes it feasible and changes the
  objective by at most ``d * max_S D_i``. So ``A > max_S D_i`` makes it worse than that
  feasible neighbour.
* at most a budget: ``w . x <= B`` with non-negative integer weights (see :class:`AtMost` for
  real ones). Slack bits encode ``s`` in ``0..B`` exactly and ``P = (w . x + s - B)^2``. A
  sample over budget by ``e >= 1`` pays at least ``A e^2`` whatever its slack; removing at
  most ``e`` chosen items (each weighs at least 1) makes it feasible for at most
  ``e * max_S D_i``. The same ``A > max_S D_i`` works. We chose slack bits over unbalanced
  penalisation (``-a h + b h^2``, no extra variables): that one is a heuristic whose optimum
  may be infeasible, and we want a guarantee; the price is ``ceil(log2(B + 1))`` extra
  variables, kept at most 11 by :class:`AtMost`'s unit.

When the constraints act on disjoint variables the repairs do not interfere and each gets its
own ``A_c``. When they overlap, every ``A_c`` exceeds the objective's whole range,
``sum_i |h_i| + sum_{i<j} |Q_ij|``: any infeasible point then pays more than any feasible one
can gain. Each weight is 1.25 times its bound. Either way the penalised minimum is feasible
and equals the constrained optimum (when a feasible point exists); ``ConstrainedQubo.bound``
says which argument applied.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qslm.qubo.model import Qubo

# Penalty weight = MARGIN * bound (strictly above it), or 1 when the bound is 0.
MARGIN = 1.25


class LocalFields:
    """Local fields of a minimisation objective: flipping x_i changes it by
    ``(1 - 2 x_i) * fields[i]``; kept up to date as variables flip."""

    def __init__(self, q: Qubo, x: np.ndarray) -> None:
        self.h = q.linear
        self.sym = q.quadratic + q.quadratic.T  # dense or scipy sparse, zero diagonal
        self.x = x.astype(np.uint8).copy()
        self.values = self.h + self.sym @ self.x.astype(np.float64)

    def delta(self, i: np.ndarray) -> np.ndarray:
        return (1.0 - 2.0 * self.x[i]) * self.values[i]

    def flip(self, i: int) -> None:
        sign = 1.0 - 2.0 * self.x[i]
        self.x[i] ^= 1
        col = self.sym[[i]].toarray()[0] if hasattr(self.sym, "toarray") else self.sym[i]
        self.values = self.values + sign * col


class Constraint(ABC):
    """A constraint on some of the decision variables (indices into the objective)."""

    variables: np.ndarray
    _given: Sequence[int] | np.ndarray | None = None

    @property
    def num_slack(self) -> int:
        return 0

    def bind(self, n: int) -> Constraint:
        """A copy with the variables resolved against an objective of ``n`` variables."""
        bound = copy.copy(self)
        bound.variables = _indices(self._given, n)
        bound.validate()
        return bound

    def validate(self) -> None:  # noqa: B027 (optional hook)
        """Raise ValueError when the bound constraint cannot be met or is malformed."""

    @abstractmethod
    def penalty(self, slack: Sequence[int]) -> tuple[np.ndarray, np.ndarray, float]:
        """``P = (sum_t coef_t * x[index_t] - target)^2`` as ``(index, coef, target)``, its slack
        bits at the given indices: zero when the constraint holds (with the right slack), at
        least 1 when it is broken."""

    @abstractmethod
    def violation(self, x: np.ndarray) -> float:
        """How far ``x`` (decision variables) is from satisfying it; 0 when it holds."""

    @abstractmethod
    def repair(self, fields: LocalFields) -> None:
        """Flip decision variables (through ``fields``) until the constraint holds."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """A JSON-safe description."""

    def satisfied(self, x: np.ndarray) -> bool:
        return self.violation(x) == 0


def _indices(variables: Sequence[int] | np.ndarray | None, n: int) -> np.ndarray:
    idx = np.arange(n) if variables is None else np.asarray(variables, dtype=np.int64)
    if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n)):
        raise ValueError(f"constraint variables must be indices in 0..{n - 1}")
    if np.unique(idx).size != idx.size:
        raise ValueError("constraint variables must not repeat")
    return idx


class ExactlyK(Constraint):
    """Exactly ``k`` of ``variables`` (default: all decision variables) are 1.

    Repair: greedily remove (or add) the variable whose flip costs least, one at a time."""

    def __init__(self, k: int, variables: Sequence[int] | np.ndarray | None = None) -> None:
        if int(k) != k or k < 0:
            raise ValueError(f"k must be a non-negative integer, got {k!r}")
        self.k = int(k)
        self._given = variables

    def validate(self) -> None:
        if self.k > self.variables.size:
            raise ValueError(f"cannot choose exactly {self.k} of {self.variables.size} variables")

    def penalty(self, slack):
        return self.variables, np.ones(self.variables.size), float(self.k)

    def violation(self, x):
        return float(abs(int(np.asarray(x)[self.variables].sum()) - self.k))

    def repair(self, fields):
        s = self.variables
        while True:
            on = s[fields.x[s] == 1]
            count = on.size
            if count == self.k:
                return
            pool = on if count > self.k else s[fields.x[s] == 0]
            fields.flip(int(pool[np.argmin(fields.delta(pool))]))

    def describe(self):
        return {"type": "exactly_k", "k": self.k, "variables": int(self.variables.size)}


class OneHot(ExactlyK):
    """Exactly one of ``variables`` is 1. Repair: clear the group and set its best member."""

    def __init__(self, variables: Sequence[int] | np.ndarray) -> None:
        super().__init__(1, variables)

    def repair(self, fields):
        s = self.variables
        if int(fields.x[s].sum()) == 1:
            return
        for i in s[fields.x[s] == 1]:
            fields.flip(int(i))
        fields.flip(int(s[np.argmin(fields.delta(s))]))

    def describe(self):
        return {"type": "one_hot", "variables": self.variables.astype(int).tolist()}


class AtMost(Constraint):
    """``sum_i weights_i x_i <= budget`` over ``variables`` (a knapsack), weights >= 0.

    The penalty needs integer weights: they are measured in ``unit`` (default: their greatest
    common divisor with the budget when all are integers, else budget / 1024) and rounded up,
    the budget down, so the penalised problem never accepts an over-budget choice (it may
    refuse one that only fits by less than a unit). :meth:`violation` uses the exact weights.
    Repair: drop the chosen item whose benefit per weight is lowest until within budget."""

    MAX_UNITS = 1024

    def __init__(
        self,
        weights: Sequence[float] | np.ndarray,
        budget: float,
        variables: Sequence[int] | np.ndarray | None = None,
        *,
        unit: float | None = None,
    ) -> None:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("weights must be finite and non-negative")
        if not (math.isfinite(budget) and budget >= 0):
            raise ValueError(f"budget must be a non-negative number, got {budget!r}")
        self.weights, self.budget, self._given = w, float(budget), variables
        self.unit = float(unit) if unit is not None else self._auto_unit()
        if not self.unit > 0:
            raise ValueError(f"unit must be positive, got {unit!r}")
        tiny = 1e-9
        self.int_weights = np.ceil(w / self.unit - tiny).astype(np.int64)
        self.int_budget = math.floor(self.budget / self.unit + tiny)
        m = self.int_budget.bit_length()
        coefs = [1 << b for b in range(max(m - 1, 0))]
        if m:
            coefs.append(self.int_budget - ((1 << (m - 1)) - 1))
        self.slack_coefs = np.array(coefs, dtype=np.int64)  # sums to the budget, covers 0..B

    def _auto_unit(self) -> float:
        vals = [*self.weights.tolist(), self.budget]
        if all(float(v).is_integer() for v in vals):
            g = math.gcd(*(int(v) for v in vals)) or 1
            if self.budget / g <= self.MAX_UNITS:
                return float(g)
        return max(self.budget / self.MAX_UNITS, 1e-12)

    def validate(self) -> None:
        if self.variables.size != self.weights.size:
            raise ValueError(
                f"{self.weights.size} weights for {self.variables.size} constrained variables"
            )

    @property
    def num_slack(self) -> int:
        return int(self.slack_coefs.size)

    def penalty(self, slack):
        idx = np.concatenate([self.variables, np.asarray(slack, dtype=np.int64)])
        coef = np.concatenate([self.int_weights, self.slack_coefs]).astype(np.float64)
        return idx, coef, float(self.int_budget)

    def violation(self, x):
        excess = float(self.weights @ np.asarray(x)[self.variables]) - self.budget
        return excess if excess > 1e-9 * max(1.0, self.budget) else 0.0  # float sums

    def repair(self, fields):
        s, w = self.variables, self.weights
        while self.violation(fields.x) > 0:
            on = np.flatnonzero((fields.x[s] == 1) & (w > 0))
            benefit = fields.delta(s[on])  # the objective's rise if the item is dropped
            fields.flip(int(s[on[np.argmin(benefit / w[on])]]))

    def describe(self):
        return {
            "type": "at_most",
            "budget": self.budget,
            "unit": self.unit,
            "variables": int(self.variables.size),
            "slack_bits": self.num_slack,
        }


def flip_bounds(q: Qubo) -> np.ndarray:
    """``D_i = |h_i| + sum_j |Q_ij|``: the most one flip of ``x_i`` can change the objective."""
    sym = abs(q.quadratic) + abs(q.quadratic).T
    return np.abs(q.linear) + np.asarray(sym.sum(axis=1)).reshape(-1)


@dataclass
class Outcome:
    """A decoded answer: ``sample`` (decision variables) and its objective; ``solver_feasible``
    says whether the solver's own sample met every constraint, ``repaired`` whether it was
    changed, ``feasible`` whether the returned sample meets them now."""

    sample: np.ndarray
    objective: float
    feasible: bool
    solver_feasible: bool
    repaired: bool
    violations: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "feasible": self.feasible,
            "solver_feasible": self.solver_feasible,
            "repaired": self.repaired,
            "violations": list(self.violations),
        }


@dataclass(frozen=True)
class ConstrainedQubo:
    """An objective, its constraints and the penalised Qubo a solver works on."""

    objective: Qubo
    constraints: tuple[Constraint, ...]
    qubo: Qubo
    penalties: tuple[float, ...]
    bound: str  # "per-constraint" or "objective-range": which guarantee set the penalties

    @property
    def num_decision(self) -> int:
        return self.objective.num_variables

    def decision(self, sample: Any) -> np.ndarray:
        """The decision variables of a sample of the penalised Qubo (or of a decision sample)."""
        x = np.asarray(sample).reshape(-1)
        if x.size not in (self.num_decision, self.qubo.num_variables):
            raise ValueError(
                f"sample has {x.size} entries; expected {self.num_decision} decision variables "
                f"or {self.qubo.num_variables} with slack bits"
            )
        return x[: self.num_decision].astype(np.uint8)

    def violations(self, sample: Any) -> list[str]:
        x = self.decision(sample)
        return [
            f"{c.describe()['type']}: off by {c.violation(x):g}"
            for c in self.constraints
            if not c.satisfied(x)
        ]

    def check(self, sample: Any) -> bool:
        """Whether every constraint holds (slack bits are ignored)."""
        x = self.decision(sample)
        return all(c.satisfied(x) for c in self.constraints)

    def objective_value(self, sample: Any) -> float:
        return self.objective.energy(self.decision(sample))

    def repair(self, sample: Any, *, passes: int = 3) -> np.ndarray:
        """The decision sample made feasible by each constraint's greedy repair (repeated while
        overlapping constraints undo each other); check the result, it may still fail."""
        fields = LocalFields(self.objective.as_min(), self.decision(sample))
        for _ in range(passes):
            for c in self.constraints:
                c.repair(fields)
            if self.check(fields.x):
                break
        return fields.x.copy()

    def resolve(self, sample: Any) -> Outcome:
        """Check a sample, repair it if needed, and say honestly which happened."""
        x = self.decision(sample)
        problems = self.violations(x)
        if problems:
            fixed = self.repair(x)
            return Outcome(
                fixed, self.objective_value(fixed), self.check(fixed), False, True, problems
            )
        return Outcome(x, self.objective_value(x), True, True, False)

    def describe(self) -> dict[str, Any]:
        return {
            "variables": self.num_decision,
            "slack_bits": self.qubo.num_variables - self.num_decision,
            "constraints": [c.describe() for c in self.constraints],
            "penalties": list(self.penalties),
            "bound": self.bound,
        }


def constrain(
    objective: Qubo,
    constraints: Sequence[Constraint],
    *,
    penalties: Sequence[float] | None = None,
) -> ConstrainedQubo:
    """The penalised problem of ``objective`` under ``constraints`` (indices into its variables).

    Penalty weights come from the objective's scale (module docstring) unless ``penalties``
    gives them, in which case no guarantee is claimed (``bound`` is "given")."""
    n = objective.num_variables
    bound_cons = tuple(c.bind(n) for c in constraints)
    if penalties is not None and len(penalties) != len(bound_cons):
        raise ValueError(f"{len(penalties)} penalties for {len(bound_cons)} constraints")
    q = objective.as_min()
    d = flip_bounds(q)
    seen = np.zeros(n, dtype=np.int64)
    for c in bound_cons:
        seen[c.variables] += 1
    if penalties is not None:
        weights, bound = [float(p) for p in penalties], "given"
    elif (seen <= 1).all():
        weights = [
            _strictly_above(d[c.variables].max() if c.variables.size else 0.0) for c in bound_cons
        ]
        bound = "per-constraint"
    else:
        total = float(np.abs(q.linear).sum() + abs(q.quadratic).sum())
        weights, bound = [_strictly_above(total)] * len(bound_cons), "objective-range"

    total_vars = n + sum(c.num_slack for c in bound_cons)
    lin = np.zeros(total_vars)
    lin[:n] = q.linear
    quad = np.zeros((total_vars, total_vars))
    quad[:n, :n] = q.dense_quadratic()
    offset = q.offset
    start = n
    labels = list(objective.labels)
    taken = set(labels)
    for ci, (c, a) in enumerate(zip(bound_cons, weights, strict=True)):
        slack = list(range(start, start + c.num_slack))
        start += c.num_slack
        for b in range(c.num_slack):
            label = f"slack{ci}_{b}"
            while label in taken:
                label = "_" + label
            labels.append(label)
            taken.add(label)
        # A (coef . x - t)^2 = A [sum coef_i (coef_i - 2t) x_i + sum_{i<j} 2 coef_i coef_j x_i x_j
        # + t^2] for 0/1 x. Pairs may land below the diagonal; Qubo folds both triangles.
        idx, coef, t = c.penalty(slack)
        lin[idx] += a * coef * (coef - 2.0 * t)
        quad[np.ix_(idx, idx)] += a * np.triu(2.0 * np.outer(coef, coef), 1)
        offset += a * t * t
    penalised = Qubo(lin, quad, offset, labels=labels, sense="min")
    if objective.sense == "max":
        penalised = Qubo(
            -penalised.linear, -penalised.quadratic, -penalised.offset, labels=labels, sense="max"
        )
    return ConstrainedQubo(objective, bound_cons, penalised, tuple(weights), bound)


def _strictly_above(bound: float) -> float:
    return MARGIN * float(bound) if bound > 0 else 1.0
