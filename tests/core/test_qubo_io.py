"""Reading and writing .qubo and JSON files, and the errors for malformed ones."""

from __future__ import annotations

import numpy as np
import pytest

from qslm.errors import ConfigError
from qslm.qubo.io import read_json, read_problem, read_qubo, write_json, write_qubo
from qslm.qubo.model import Qubo


def file_objective(path, x) -> float:
    """The objective of a .qubo file as written, every weight counted once, read by hand."""
    total = 0.0
    for line in path.read_text().splitlines():
        t = line.split()
        if t and t[0] not in ("c", "p"):
            total += float(t[2]) * x[int(t[0])] * x[int(t[1])]
    return total


@pytest.fixture
def bqp50_1(shared_dir):
    path = shared_dir / "benchmarks" / "qubo" / "bqp50_1.qubo"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    return path


def test_read_bqp_gives_the_file_objective(bqp50_1):
    q = read_qubo(bqp50_1, sense="max")
    assert q.num_variables == 50 and q.sense == "max"
    x = np.random.default_rng(0).integers(0, 2, size=(5, 50))
    np.testing.assert_allclose(q.energies(x), [file_objective(bqp50_1, row) for row in x])


def test_qubo_write_read_round_trip(bqp50_1, tmp_path):
    q = read_qubo(bqp50_1, sense="max")
    out = tmp_path / "copy.qubo"
    write_qubo(q, out)
    back = read_problem(out)  # the qslm sense comment brings back "max"
    assert back.sense == "max" and back.num_variables == 50
    np.testing.assert_array_equal(back.linear, q.linear)
    np.testing.assert_array_equal(back.dense_quadratic(), q.dense_quadratic())
    header = next(line for line in out.read_text().splitlines() if line.startswith("p "))
    assert header == "p qubo 0 50 3 108"


def test_offset_survives_qubo_and_json_round_trips(tmp_path):
    q = Qubo(
        [1.0, -2.0, 0.5], [[0, 3, 0], [0, 0, -1], [0, 0, 0]], 2.5, labels=["a", "b", 7], sense="max"
    )
    write_qubo(q, tmp_path / "p.qubo")
    write_json(q, tmp_path / "p.json")
    x = np.array([[1, 1, 0], [0, 1, 1], [1, 1, 1]])
    for back in (read_problem(tmp_path / "p.qubo"), read_json(tmp_path / "p.json")):
        assert back.sense == "max"
        np.testing.assert_allclose(back.energies(x), q.energies(x))
    assert read_json(tmp_path / "p.json").labels == ("a", "b", 7)


GOOD = ["c a comment", "p qubo 0 4 2 2", "0 0 1.0", "3 3 -2.0", "0 1 5.0", "1 3 -1.5"]


def write_lines(tmp_path, lines, name="bqp.qubo"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_good_file_reads(tmp_path):
    q = read_qubo(write_lines(tmp_path, GOOD))
    assert q.energy([1, 1, 0, 1]) == 1.0 - 2.0 + 5.0 - 1.5


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([*GOOD[:1], "p qubo 0 4 two 2", *GOOD[2:]], "line 2: bad header"),
        ([*GOOD[:1], "p qbo 0 4 2 2", *GOOD[2:]], "line 2: bad header"),
        (
            [*GOOD[:4], "0 7 5.0", *GOOD[5:]],
            "line 5: index 7 out of range (the header says 4 nodes",
        ),
        ([*GOOD[:4], "3 1 5.0", *GOOD[5:]], "line 5: coupler 3 1 has i > j"),
        ([*GOOD[:2], "0 0 nan", *GOOD[3:]], "line 3: weight 'nan' is not a finite number"),
        ([*GOOD[:2], "0 0 inf", *GOOD[3:]], "line 3: weight 'inf' is not a finite number"),
        ([*GOOD[:2], "0 0 abc", *GOOD[3:]], "line 3: weight 'abc' is not a number"),
        ([*GOOD, "2 3 1.0"], "line 2: the header says 2 couplers but the file has 3"),
        (GOOD[:3] + GOOD[4:], "line 2: the header says 2 diagonal (node) lines but the file has 1"),
        ([*GOOD, "0 1 2.0"], "line 7: entry 0 1 repeats line 5"),
        (GOOD[:1] + GOOD[2:3] + GOOD[1:2], "line 2: data before the header"),
        ([*GOOD, "2 2 1.0"], "line 7: diagonal entry 2 2 after the couplers"),
        ([*GOOD[:2], "0 0", *GOOD[3:]], "line 3: expected 'i j weight'"),
        ([], "line 1: empty file"),
        (["c only comments"], "no header"),
    ],
)
def test_malformed_qubo_names_file_and_line(tmp_path, lines, message):
    path = write_lines(tmp_path, lines)
    with pytest.raises(ConfigError) as info:
        read_qubo(path)
    text = str(info.value)
    assert text.startswith(f"{path}: "), text
    assert message in text, text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            '{"linear": [1, 2], "quadratic": [[0, 5, 1.0]]}',
            "quadratic[0][1]: index 5 out of range (2 variables)",
        ),
        ('{"linear": [1, "x"]}', "linear[1]: expected a finite number"),
        ('{"linear": [1, 2], "sense": "up"}', "sense: expected"),
        ('{"linear": [1, 2], "quadratc": []}', "quadratc: unknown key"),
        ('{"linear": [1, 2], "variables": ["a"]}', "variables: expected a list of 2 labels"),
        ('{"linear": [1, 2],\n "quadratic": [[0, 1, 2.0],]}', "line 2: JSON syntax error"),
        ('{"quadratic": []}', "linear: required"),
    ],
)
def test_malformed_json_names_the_key(tmp_path, data, message):
    path = tmp_path / "p.json"
    path.write_text(data)
    with pytest.raises(ConfigError, match=r"p\.json: ") as info:
        read_problem(path)
    assert message in str(info.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        read_problem(tmp_path / "nope.qubo")
