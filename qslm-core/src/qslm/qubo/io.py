"""Reading and writing QUBO files: qbsolv's ``.qubo`` text format and a JSON form.

``.qubo`` (qbsolv)::

    c comment lines start with c
    p qubo 0 <maxNodes> <nNodes> <nCouplers>
    i i w     (nNodes diagonal lines first, 0-indexed)
    i j w     (then nCouplers off-diagonal lines, i < j)

The objective is ``sum(w_ii x_i) + sum(w_ij x_i x_j)``, every weight counted once as written;
the format does not say which way to optimise (qbsolv minimises unless given ``-m``). Two
comment lines are a qslm extension that other readers skip: ``c qslm sense max`` and
``c qslm offset <number>``; the writer emits them so that a file read back is the same Qubo.
Variable labels are not kept (the variables are 0..maxNodes-1); use JSON for labels.

JSON (``.json``), one object::

    {"format": "qslm-qubo", "version": 1,
     "sense": "min",                  optional, "min" (default) or "max"
     "offset": 0.0,                   optional
     "variables": ["a", "b", "c"],    optional labels (strings or integers), default 0..n-1
     "linear": [1.0, -2.0, 0.0],      one weight per variable
     "quadratic": [[0, 1, 3.0]]}      optional [i, j, w] with indices into the variables,
                                      i != j; repeated pairs add

Every problem in a file raises :class:`~qslm.errors.ConfigError` naming the file and the line
(``.qubo``) or key path (JSON).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from qslm.errors import ConfigError
from qslm.qubo.model import Qubo, Sense, check_size, labels_jsonable

JSON_FORMAT = "qslm-qubo"
_HEADER = "'p qubo 0 <maxNodes> <nNodes> <nCouplers>'"


def read_problem(path: str | Path, *, sense: Sense | None = None) -> Qubo:
    """Read a ``.qubo`` or JSON file (chosen by suffix, else by the first character).

    ``sense`` overrides the file's own (a JSON ``sense`` or a ``c qslm sense`` line; default
    "min")."""
    path = Path(path)
    text = _read_text(path)
    if path.suffix.lower() == ".json" or (
        path.suffix.lower() != ".qubo" and text.lstrip().startswith("{")
    ):
        return parse_json(text, name=str(path), sense=sense)
    return parse_qubo(text, name=str(path), sense=sense)


def read_qubo(path: str | Path, *, sense: Sense | None = None) -> Qubo:
    """Read a qbsolv ``.qubo`` file; ``sense="max"`` for files whose objective is maximised
    (such as Beasley's bqp instances)."""
    path = Path(path)
    return parse_qubo(_read_text(path), name=str(path), sense=sense)


def read_json(path: str | Path, *, sense: Sense | None = None) -> Qubo:
    """Read the JSON form (schema in the module docstring)."""
    path = Path(path)
    return parse_json(_read_text(path), name=str(path), sense=sense)


def _read_text(path: Path) -> str:
    try:
        if path.suffix.lower() == ".gz":  # large instances ship compressed (bqp2500_K.qubo.gz)
            import gzip

            with gzip.open(path, "rt", encoding="utf-8") as f:
                return f.read()
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a QUBO file") from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None


# --- .qubo --------------------------------------------------------------------------------


def parse_qubo(text: str, *, name: str = "<string>", sense: Sense | None = None) -> Qubo:
    """Parse qbsolv ``.qubo`` text (see the module docstring)."""

    def fail(lineno: int, message: str) -> ConfigError:
        return ConfigError(f"{name}: line {lineno}: {message}")

    header: tuple[int, int, int, int] | None = None  # line, maxNodes, nNodes, nCouplers
    file_sense: Sense | None = None
    offset = 0.0
    rows: list[int] = []
    cols: list[int] = []
    weights: list[float] = []
    seen: dict[tuple[int, int], int] = {}
    n_diag = n_off = 0
    lines = text.splitlines()
    for lineno, raw in enumerate(lines, 1):
        tokens = raw.split()
        if not tokens:
            continue
        if tokens[0].startswith("c"):
            if tokens[:2] == ["c", "qslm"] and len(tokens) == 4:
                if tokens[2] == "sense" and tokens[3] in ("min", "max"):
                    file_sense = tokens[3]  # type: ignore[assignment]
                elif tokens[2] == "offset":
                    offset = _number(tokens[3], lineno, fail, "offset")
            continue
        if tokens[0] == "p":
            if header is not None:
                raise fail(lineno, f"a second 'p' header (the first is on line {header[0]})")
            header = _header(tokens, raw, lineno, fail, name)
            continue
        if header is None:
            raise fail(lineno, f"data before the header; expected {_HEADER} first")
        i, j, w = _entry(tokens, raw, lineno, fail, header[1])
        if i > j:
            raise fail(lineno, f"coupler {i} {j} has i > j; write it as {j} {i}")
        if (i, j) in seen:
            raise fail(lineno, f"entry {i} {j} repeats line {seen[(i, j)]}")
        seen[(i, j)] = lineno
        if i == j:
            if n_off:
                raise fail(
                    lineno,
                    f"diagonal entry {i} {i} after the couplers; the "
                    f"{header[2]} diagonal lines come first",
                )
            n_diag += 1
        else:
            n_off += 1
        rows.append(i)
        cols.append(j)
        weights.append(w)

    if header is None:
        if not any(line.strip() for line in lines):
            raise ConfigError(f"{name}: line 1: empty file; expected the header {_HEADER}")
        raise ConfigError(f"{name}: line {len(lines)}: no header; expected {_HEADER}")
    lineno, max_nodes, nodes, couplers = header
    if n_diag != nodes:
        raise fail(
            lineno, f"the header says {nodes} diagonal (node) lines but the file has {n_diag}"
        )
    if n_off != couplers:
        raise fail(lineno, f"the header says {couplers} couplers but the file has {n_off}")
    try:
        return Qubo.from_coo(
            max_nodes,
            np.zeros(max_nodes),
            rows,
            cols,
            weights,
            offset,
            sense=sense or file_sense or "min",
        )
    except ValueError as exc:  # what the model refuses as a whole: weights that overflow
        raise ConfigError(f"{name}: {exc}") from None


def _header(
    tokens: list[str], raw: str, lineno: int, fail: Any, name: str
) -> tuple[int, int, int, int]:
    """``p qubo 0 maxNodes nNodes nCouplers`` -> (line, maxNodes, nNodes, nCouplers)."""
    if len(tokens) != 6 or tokens[1] != "qubo":
        raise fail(lineno, f"bad header {raw.strip()!r}; expected {_HEADER}")
    try:
        max_nodes, nodes, couplers = (int(t) for t in tokens[3:])
    except ValueError:
        raise fail(
            lineno,
            f"bad header {raw.strip()!r}: the three counts must be integers; expected {_HEADER}",
        ) from None
    if min(max_nodes, nodes, couplers) < 0:
        raise fail(lineno, f"bad header {raw.strip()!r}: negative count")
    check_size(max_nodes, nodes + couplers, f"{name}: line {lineno}: the header's")
    return (lineno, max_nodes, nodes, couplers)


def _entry(
    tokens: list[str], raw: str, lineno: int, fail: Any, max_nodes: int
) -> tuple[int, int, float]:
    """``i j weight`` with both indices in range."""
    if len(tokens) != 3:
        raise fail(lineno, f"expected 'i j weight', got {raw.strip()!r}")
    try:
        i, j = int(tokens[0]), int(tokens[1])
    except ValueError:
        raise fail(lineno, f"indices must be integers, got {raw.strip()!r}") from None
    w = _number(tokens[2], lineno, fail, "weight")
    for index in (i, j):
        if not 0 <= index < max_nodes:
            raise fail(
                lineno,
                f"index {index} out of range (the header says {max_nodes} nodes, numbered from 0)",
            )
    return i, j, w


def _number(token: str, lineno: int, fail: Any, what: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise fail(lineno, f"{what} {token!r} is not a number") from None
    if not math.isfinite(value):
        raise fail(lineno, f"{what} {token!r} is not a finite number")
    return value


def format_qubo(qubo: Qubo, *, comment: str = "") -> str:
    """The ``.qubo`` text of a Qubo (labels are not kept; sense and offset as qslm comments)."""
    from qslm import __version__

    upper = qubo.quadratic.tocoo() if qubo.is_sparse else None
    if upper is not None:
        order = np.lexsort((upper.col, upper.row))
        keep = upper.data[order] != 0
        rows, cols, data = upper.row[order][keep], upper.col[order][keep], upper.data[order][keep]
    else:
        rows, cols = np.nonzero(qubo.quadratic)
        data = qubo.quadratic[rows, cols]
    nodes = np.flatnonzero(qubo.linear)
    out = [f"c written by qslm {__version__}"]
    out += [f"c {line}" for line in comment.splitlines()]
    out.append(f"c qslm sense {qubo.sense}")
    if qubo.offset:
        out.append(f"c qslm offset {qubo.offset!r}")
    out.append(f"p qubo 0 {qubo.num_variables} {nodes.size} {data.size}")
    out += [f"{i} {i} {float(qubo.linear[i])!r}" for i in nodes]
    out += [f"{i} {j} {float(w)!r}" for i, j, w in zip(rows, cols, data, strict=True)]
    return "\n".join(out) + "\n"


def write_qubo(qubo: Qubo, path: str | Path, *, comment: str = "") -> None:
    """Write the ``.qubo`` form."""
    Path(path).write_text(format_qubo(qubo, comment=comment), encoding="utf-8")


# --- JSON ---------------------------------------------------------------------------------


def to_json_dict(qubo: Qubo) -> dict[str, Any]:
    """The JSON form as a dict (schema in the module docstring)."""
    if not labels_jsonable(qubo.labels):
        raise ValueError("JSON needs string or integer variable labels")
    if qubo.is_sparse:
        coo = qubo.quadratic.tocoo()
        triples = zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True)
    else:
        rows, cols = np.nonzero(qubo.quadratic)
        triples = zip(
            rows.tolist(), cols.tolist(), qubo.quadratic[rows, cols].tolist(), strict=True
        )
    out: dict[str, Any] = {
        "format": JSON_FORMAT,
        "version": 1,
        "sense": qubo.sense,
        "offset": qubo.offset,
    }
    if qubo.labels != tuple(range(qubo.num_variables)):
        out["variables"] = list(qubo.labels)
    out["linear"] = qubo.linear.tolist()
    out["quadratic"] = sorted([i, j, w] for i, j, w in triples if w != 0)
    return out


def write_json(qubo: Qubo, path: str | Path) -> None:
    """Write the JSON form."""
    Path(path).write_text(json.dumps(to_json_dict(qubo)) + "\n", encoding="utf-8")


def parse_json(text: str, *, name: str = "<string>", sense: Sense | None = None) -> Qubo:
    """Parse the JSON form; errors name the key path."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name}: line {exc.lineno}: JSON syntax error: {exc.msg}") from None
    except RecursionError:
        raise ConfigError(f"{name}: JSON nested too deeply (no QUBO file nests lists)") from None
    return from_json_dict(data, name=name, sense=sense)


def from_json_dict(data: Any, *, name: str = "<json>", sense: Sense | None = None) -> Qubo:
    """A Qubo from the JSON form's dict."""

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{name}: {key}: {message}")

    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a JSON object with 'linear' and 'quadratic'")
    unknown = set(data) - {
        "format",
        "version",
        "sense",
        "offset",
        "variables",
        "linear",
        "quadratic",
    }
    if unknown:
        raise fail(
            sorted(unknown)[0],
            "unknown key (allowed: format, version, sense, offset, variables, linear, quadratic)",
        )
    if data.get("format", JSON_FORMAT) != JSON_FORMAT:
        raise fail("format", f"expected {JSON_FORMAT!r}, got {data['format']!r}")
    if data.get("version", 1) != 1:
        raise fail("version", f"this qslm reads version 1, got {data['version']!r}")
    file_sense = data.get("sense", "min")
    if file_sense not in ("min", "max"):
        raise fail("sense", f'expected "min" or "max", got {file_sense!r}')
    offset = data.get("offset", 0.0)
    if not _finite(offset):
        raise fail("offset", f"expected a finite number, got {_short(offset)}")
    linear = data.get("linear")
    if not isinstance(linear, list):
        raise fail("linear", "required: a list with one weight per variable")
    for k, w in enumerate(linear):
        if not _finite(w):
            raise fail(f"linear[{k}]", f"expected a finite number, got {_short(w)}")
    n = len(linear)
    quad = data.get("quadratic", [])
    check_size(n, len(quad) if isinstance(quad, list) else 0, f"{name}: linear")
    labels = data.get("variables")
    if labels is not None:
        if not isinstance(labels, list) or len(labels) != n:
            raise fail("variables", f"expected a list of {n} labels (one per linear weight)")
        if not labels_jsonable(labels) or len(set(labels)) != n:
            raise fail("variables", "labels must be unique strings or integers")
    if not isinstance(quad, list):
        raise fail("quadratic", "expected a list of [i, j, weight]")
    rows, cols, weights = [], [], []
    for k, item in enumerate(quad):
        if not (isinstance(item, list) and len(item) == 3):
            raise fail(f"quadratic[{k}]", f"expected [i, j, weight], got {item!r}")
        i, j, w = item
        for pos, index in ((0, i), (1, j)):
            if not isinstance(index, int) or isinstance(index, bool):
                raise fail(f"quadratic[{k}][{pos}]", f"expected an integer index, got {index!r}")
            if not 0 <= index < n:
                raise fail(f"quadratic[{k}][{pos}]", f"index {index} out of range ({n} variables)")
        if i == j:
            raise fail(f"quadratic[{k}]", f"pair ({i}, {i}) is a linear term; put it in linear")
        if not _finite(w):
            raise fail(f"quadratic[{k}][2]", f"expected a finite number, got {_short(w)}")
        rows.append(i)
        cols.append(j)
        weights.append(w)
    try:
        return Qubo.from_coo(
            n, linear, rows, cols, weights, float(offset), labels=labels, sense=sense or file_sense
        )
    except ValueError as exc:  # what the model refuses as a whole: weights that overflow
        raise ConfigError(f"{name}: {exc}") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _finite(value: Any) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:  # a JSON integer has no size limit; one beyond float64's range is not a weight
        return math.isfinite(float(value))
    except OverflowError:
        return False
