"""The QUBO model: ``f(x) = linear . x + sum_{i<j} Q[i, j] x_i x_j + offset`` over x in {0, 1}^n.

Storage: ``linear`` is a float64 vector and ``quadratic`` a *strictly upper-triangular*
(n, n) matrix, a dense numpy array or a ``scipy.sparse`` CSR array; each pair's weight is
stored once, at ``[i, j]`` with ``i < j``. The constructor accepts any square matrix and reads
it as ``x^T Q x``: ``Q[i, j]`` and ``Q[j, i]`` both count and the diagonal adds to ``linear``.
A ``Qubo`` is immutable (its arrays are read-only).

``sense`` says which way the objective goes ("min" or "max"). :meth:`Qubo.energies` always
returns ``f(x)`` itself, so an energy means the same number in either sense; solvers work on
:meth:`Qubo.as_min` and report in the Qubo's sense.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from qslm.resources import check_memory

if TYPE_CHECKING:
    import dimod

Sense = Literal["min", "max"]

# Above this many variables a COO-built problem is stored sparse (when it is sparse enough).
_DENSE_LIMIT = 4096

MAX_ENERGY = 1e300
"""The largest sum of the weights' magnitudes (offset included) a Qubo accepts: every energy,
and every sum or difference of two (a flip's change), then stays within float64's 1.8e308."""


def _is_sparse(a: Any) -> bool:
    return hasattr(a, "tocsr") and hasattr(a, "nnz")


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class Qubo:
    """A quadratic unconstrained binary optimisation problem with labelled variables."""

    def __init__(
        self,
        linear: Sequence[float] | np.ndarray,
        quadratic: Any = None,
        offset: float = 0.0,
        *,
        labels: Sequence[Hashable] | None = None,
        sense: Sense = "min",
    ) -> None:
        lin = np.array(linear, dtype=np.float64).reshape(-1)
        n = lin.shape[0]
        if sense not in ("min", "max"):
            raise ValueError(f"sense must be 'min' or 'max', got {sense!r}")
        if quadratic is None and n > _DENSE_LIMIT:
            from scipy import sparse

            upper: Any = sparse.csr_array((n, n), dtype=np.float64)
        elif quadratic is None:
            upper = np.zeros((n, n))
        elif _is_sparse(quadratic):
            upper, diag = _upper_sparse(quadratic, n)
            lin += diag
        else:
            q = np.asarray(quadratic, dtype=np.float64)
            if q.shape != (n, n):
                raise ValueError(f"quadratic must be ({n}, {n}) for {n} variables, got {q.shape}")
            lin += np.diagonal(q)
            upper = np.triu(q, 1) + np.tril(q, -1).T
        values = upper.data if _is_sparse(upper) else upper
        if not (np.isfinite(lin).all() and np.isfinite(values).all() and np.isfinite(offset)):
            raise ValueError("QUBO weights and offset must be finite (no NaN or inf)")
        with np.errstate(over="ignore"):
            bound = float(np.abs(lin).sum() + np.abs(values).sum() + abs(offset))
        if not bound <= MAX_ENERGY:
            raise ValueError(
                f"the weights' magnitudes sum to {bound:.3g} (beyond {MAX_ENERGY:g}): energies "
                "could overflow float64; scale the problem down"
            )
        given = labels is not None
        labels = tuple(labels) if given else tuple(range(n))
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} variables")
        if given and len(set(labels)) != n:  # range(n) is unique; a set of 10^8 ints is not free
            raise ValueError("variable labels must be unique")
        self.linear = _readonly(lin)
        self.quadratic = upper if _is_sparse(upper) else _readonly(upper)
        self.offset = float(offset)
        self.labels: tuple[Hashable, ...] = labels
        self.sense: Sense = sense
        self._coupling: np.ndarray | None = None

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def from_coo(
        cls,
        n: int,
        linear: Sequence[float] | np.ndarray,
        rows: Sequence[int] | np.ndarray,
        cols: Sequence[int] | np.ndarray,
        weights: Sequence[float] | np.ndarray,
        offset: float = 0.0,
        *,
        labels: Sequence[Hashable] | None = None,
        sense: Sense = "min",
    ) -> Qubo:
        """From pair lists: weight ``weights[k]`` on ``x[rows[k]] * x[cols[k]]`` (duplicates add;
        ``rows[k] == cols[k]`` adds to the linear term). Large sparse problems stay sparse."""
        r = np.asarray(rows, dtype=np.int64).reshape(-1)
        c = np.asarray(cols, dtype=np.int64).reshape(-1)
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if not (r.shape == c.shape == w.shape):
            raise ValueError("rows, cols and weights must have the same length")
        if r.size and (min(r.min(), c.min()) < 0 or max(r.max(), c.max()) >= n):
            raise ValueError(f"a pair index is out of range for {n} variables")
        lin = np.array(linear, dtype=np.float64).reshape(-1)
        if lin.shape != (n,):
            raise ValueError(f"linear must have {n} entries, got {lin.shape[0]}")
        diag = r == c
        np.add.at(lin, r[diag], w[diag])
        r, c, w = r[~diag], c[~diag], w[~diag]
        i, j = np.minimum(r, c), np.maximum(r, c)
        if n > _DENSE_LIMIT and w.size < n * n // 20:
            from scipy import sparse

            quad: Any = sparse.csr_array((w, (i, j)), shape=(n, n))
            quad.sum_duplicates()
        else:
            quad = np.zeros((n, n))
            np.add.at(quad, (i, j), w)
        return cls(lin, quad, offset, labels=labels, sense=sense)

    @classmethod
    def from_dicts(
        cls,
        linear: Mapping[Hashable, float],
        quadratic: Mapping[tuple[Hashable, Hashable], float] | None = None,
        offset: float = 0.0,
        *,
        sense: Sense = "min",
    ) -> Qubo:
        """From label-keyed dicts, like dimod's ``{v: bias}`` and ``{(u, v): bias}``. Variables
        are ordered as they first appear (linear keys, then quadratic pairs)."""
        index: dict[Hashable, int] = {}
        for v in linear:
            index.setdefault(v, len(index))
        quadratic = quadratic or {}
        for u, v in quadratic:
            index.setdefault(u, len(index))
            index.setdefault(v, len(index))
        lin = np.zeros(len(index))
        for v, w in linear.items():
            lin[index[v]] += w
        rows = [index[u] for u, _ in quadratic]
        cols = [index[v] for _, v in quadratic]
        return cls.from_coo(
            len(index),
            lin,
            rows,
            cols,
            list(quadratic.values()),
            offset,
            labels=list(index),
            sense=sense,
        )

    # --- basic properties -----------------------------------------------------------------

    @property
    def num_variables(self) -> int:
        return self.linear.shape[0]

    n = num_variables

    @property
    def is_sparse(self) -> bool:
        return _is_sparse(self.quadratic)

    @property
    def num_interactions(self) -> int:
        """Number of pairs with a non-zero weight."""
        if self.is_sparse:
            return int(np.count_nonzero(self.quadratic.data))
        return int(np.count_nonzero(self.quadratic))

    def dense_quadratic(self) -> np.ndarray:
        """The strictly upper-triangular weights as a dense array."""
        if self.is_sparse:
            return self.quadratic.toarray()
        return np.array(self.quadratic)

    def coupling_matrix(self) -> np.ndarray:
        """Dense symmetric (n, n) pair weights with a zero diagonal (read-only, cached):
        flipping x_i changes f by ``(1 - 2 x_i) * (linear[i] + coupling[i] @ x)``."""
        if self._coupling is None:
            n = self.num_variables
            check_memory(3 * 8 * n * n, f"the dense (n, n) pair weights of a {n}-variable QUBO")
            upper = self.dense_quadratic()
            self._coupling = _readonly(upper + upper.T)
        return self._coupling

    def __repr__(self) -> str:
        return (
            f"Qubo(n={self.num_variables}, interactions={self.num_interactions}, "
            f"offset={self.offset:g}, sense={self.sense!r})"
        )

    # --- evaluation -----------------------------------------------------------------------

    def energies(self, samples: Any) -> np.ndarray:
        """``f(x)`` for each row of an (m, n) array of 0/1 samples (a 1-D sample gives shape
        (1,)); the objective as written, whatever the sense."""
        x = np.asarray(samples)
        if x.ndim == 1:
            x = x[None, :]
        n = self.num_variables
        if x.ndim != 2 or x.shape[1] != n:
            raise ValueError(f"samples must have shape (m, {n}), got {np.shape(samples)}")
        if x.dtype != np.bool_ and ((x != 0) & (x != 1)).any():
            raise ValueError("samples must hold 0/1 values")
        xf = x.astype(np.float64, copy=False)
        out = xf @ self.linear + self.offset
        if n and (self.is_sparse or self.quadratic.any()):
            out += np.einsum("ij,ij->i", xf @ self.quadratic, xf)
        return out

    def energy(self, sample: Any) -> float:
        """``f(x)`` of one 0/1 sample."""
        return float(self.energies(np.asarray(sample).reshape(1, -1))[0])

    # --- senses and other forms -----------------------------------------------------------

    def with_sense(self, sense: Sense) -> Qubo:
        """The same objective, optimised the other way if ``sense`` differs."""
        if sense == self.sense:
            return self
        return Qubo(self.linear, self.quadratic, self.offset, labels=self.labels, sense=sense)

    def as_min(self) -> Qubo:
        """The minimisation form: this Qubo if its sense is "min", else ``-f`` to minimise."""
        if self.sense == "min":
            return self
        return Qubo(-self.linear, -self.quadratic, -self.offset, labels=self.labels, sense="min")

    def to_ising(self) -> tuple[np.ndarray, Any, float]:
        """``(h, J, offset)`` of the minimisation form in spins ``s = 2x - 1``:
        ``E(s) = h . s + sum_{i<j} J[i, j] s_i s_j + offset`` equals the (negated, for sense
        "max") objective. ``J`` is strictly upper-triangular, dense or sparse like ``quadratic``."""
        q = self.as_min()
        upper = q.quadratic
        row_sums = np.asarray(upper.sum(axis=1)).reshape(-1) + np.asarray(
            upper.sum(axis=0)
        ).reshape(-1)
        h = q.linear / 2 + row_sums / 4
        offset = q.offset + q.linear.sum() / 2 + float(upper.sum()) / 4
        return h, upper / 4, float(offset)

    @classmethod
    def from_ising(
        cls,
        h: Sequence[float] | np.ndarray,
        J: Any,
        offset: float = 0.0,
        *,
        labels: Sequence[Hashable] | None = None,
        sense: Sense = "min",
    ) -> Qubo:
        """Inverse of :meth:`to_ising`: the Ising problem is the minimisation form, so with
        ``sense="max"`` the result is its negation to maximise. ``J`` may be any square matrix
        (``J[i, j]`` and ``J[j, i]`` both count)."""
        h = np.asarray(h, dtype=np.float64).reshape(-1)
        n = h.shape[0]
        if _is_sparse(J):
            upper, diag = _upper_sparse(J, n)
            offset = offset + float(diag.sum())  # s_i^2 = 1
        else:
            j = np.asarray(J, dtype=np.float64)
            if j.shape != (n, n):
                raise ValueError(f"J must be ({n}, {n}) for {n} spins, got {j.shape}")
            offset = offset + float(np.trace(j))
            upper = np.triu(j, 1) + np.tril(j, -1).T
        row_sums = np.asarray(upper.sum(axis=1)).reshape(-1) + np.asarray(
            upper.sum(axis=0)
        ).reshape(-1)
        lin = 2 * h - 2 * row_sums
        off = offset - h.sum() + float(upper.sum())
        q = cls(lin, upper * 4, off, labels=labels, sense="min")
        return (
            q
            if sense == "min"
            else Qubo(-q.linear, -q.quadratic, -q.offset, labels=labels, sense="max")
        )

    def to_bqm(self) -> dimod.BinaryQuadraticModel:
        """A ``dimod.BinaryQuadraticModel`` (BINARY) of the minimisation form, so any dimod
        sampler solves this problem; needs dimod."""
        import dimod

        q = self.as_min()
        if q.is_sparse:
            coo = q.quadratic.tocoo()
            rows, cols, data = coo.row, coo.col, coo.data
        else:
            rows, cols = np.nonzero(q.quadratic)
            data = q.quadratic[rows, cols]
        return dimod.BinaryQuadraticModel.from_numpy_vectors(
            q.linear,
            (rows, cols, data),
            q.offset,
            dimod.BINARY,
            variable_order=list(self.labels),
        )

    @classmethod
    def from_bqm(cls, bqm: dimod.BinaryQuadraticModel, *, sense: Sense = "min") -> Qubo:
        """From a dimod BQM (SPIN models are converted). The BQM is read as a minimisation form:
        with ``sense="max"`` the result is its negation, so ``from_bqm(q.to_bqm(), sense=q.sense)``
        gives back ``q``."""
        import dimod

        binary = (
            bqm if bqm.vartype is dimod.BINARY else bqm.change_vartype(dimod.BINARY, inplace=False)
        )
        labels = list(binary.variables)
        lin, (rows, cols, data), offset = binary.to_numpy_vectors(variable_order=labels)
        q = cls.from_coo(len(labels), lin, rows, cols, data, float(offset), labels=labels)
        return (
            q.as_min()
            if sense == "min"
            else Qubo(-q.linear, -q.quadratic, -q.offset, labels=labels, sense="max")
        )


def _upper_sparse(matrix: Any, n: int) -> tuple[Any, np.ndarray]:
    """A sparse square matrix -> (strict upper CSR array with both triangles folded, diagonal)."""
    from scipy import sparse

    m = sparse.csr_array(matrix, dtype=np.float64)
    if m.shape != (n, n):
        raise ValueError(f"quadratic must be ({n}, {n}) for {n} variables, got {m.shape}")
    upper = sparse.triu(m, 1, format="csr") + sparse.tril(m, -1, format="csr").T
    upper = sparse.csr_array(upper)
    upper.sum_duplicates()
    upper.eliminate_zeros()
    return upper, np.asarray(m.diagonal(), dtype=np.float64)


def storage_bytes(n: int, entries: int) -> int:
    """Peak bytes :meth:`Qubo.from_coo` takes for ``n`` variables and ``entries`` weights
    (dense below ``_DENSE_LIMIT`` variables: the matrix and its triangles; else CSR arrays)."""
    if n <= _DENSE_LIMIT or entries >= n * n // 20:
        return 4 * 8 * n * n + 8 * n
    return 3 * 8 * n + 6 * 20 * entries


def check_size(n: int, entries: int, what: str) -> None:
    """Refuse a declared size before anything of it is allocated: ``what`` names where it
    was declared (a file and line), the error says what it needs and what the machine has."""
    check_memory(storage_bytes(n, entries), f"{what} {n} variables and {entries} weights")


def labels_jsonable(labels: Iterable[Hashable]) -> bool:
    """Whether every label survives JSON (a string or an integer)."""
    return all(isinstance(v, str | int) and not isinstance(v, bool) for v in labels)
