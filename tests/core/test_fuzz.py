"""Property-based fuzzing (Hypothesis) of everything a user hands qslm: pipeline files (mutations
of the examples'), ``--set`` values, ``.qubo`` and JSON QUBO files, and data files.

The property everywhere: a valid result, or a :class:`~qslm.errors.QslmError` whose message
names the file, key or line; never another exception, never a hang (each example runs under
an alarm). The default profile keeps the whole module to well under a minute; the ``long``
profile (``QSLM_FUZZ_PROFILE=long``, run by ``nox -s fuzz``) tries many more examples.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qslm.cli import cli
from qslm.context import RunContext
from qslm.data.jsonl import JsonlOptions, JsonlSource
from qslm.data.text import TextOptions, TextSource
from qslm.errors import QslmError
from qslm.qubo.io import from_json_dict, parse_json, parse_qubo

ROOT = Path(__file__).resolve().parents[2]
PROFILE = os.environ.get("QSLM_FUZZ_PROFILE", "fast")
# examples per property: (fast, long); validate-level code only, so an example takes ~10 ms
# to ~0.2 s (a pipeline validation reads its corpus)
_SCALE = {"fast": 1, "long": 20}[PROFILE]
HANG_S = 60  # an example taking longer than this is a hang, whatever the machine's load


def fuzz(examples: int):
    """Hypothesis settings of one property: ``examples`` in the fast profile (more in long),
    no per-example deadline (a loaded CI machine would make it flaky; :func:`no_hang` is the
    hang check), no database in CI's fresh clone."""
    return settings(
        max_examples=examples * _SCALE,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@contextlib.contextmanager
def no_hang(seconds: int = HANG_S) -> Iterator[None]:
    def alarm(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def assert_named(exc: QslmError, *names: str) -> None:
    text = str(exc)
    assert text.strip(), "an empty error message"
    assert any(n in text for n in names), f"the message names none of {names}: {text}"


# --- values as a user might type them --------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**32, 2**63, 10**20, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e-300, 5e-324, 1e300, 1e308, -0.0]),
)
TEXT = st.text(max_size=30)


def toml_value(value: object) -> str:
    """TOML text of a Python value (strings in JSON's escapes, which TOML reads too)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


TOML_VALUES = st.recursive(
    st.one_of(NUMBERS, TEXT, st.booleans()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text("abcxyz_", max_size=6), inner, max_size=3),
    ),
    max_leaves=6,
).map(toml_value)
RAW_VALUES = st.one_of(TOML_VALUES, TEXT)  # what a user may type that is not TOML at all


# --- pipeline files: mutations of the examples' ----------------------------------------------

EXAMPLES = ["quickstart/pipeline.toml", "thesis-qa/pretrain.toml", "thesis-qa/finetune.toml"]


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Path:
    """A copy of examples/ (the pipelines read their corpora relative to themselves)."""
    where = tmp_path_factory.mktemp("examples")
    for name in ("quickstart", "thesis-qa"):
        shutil.copytree(ROOT / "examples" / name, where / name)
    return where


def leaf_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in tree.items():
        key = f"{prefix}{json.dumps(k) if '.' in k else k}"
        keys += leaf_keys(v, key + ".") if isinstance(v, dict) and v else [key]
    return keys


@st.composite
def mutated(draw, text: str) -> str:
    """The text of a pipeline file after one to three edits a user (or a bad merge) makes."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        kind = draw(st.sampled_from(["value", "delete", "duplicate", "insert", "cut", "byte"]))
        line = lines[i] if lines else ""
        if kind == "value" and "=" in line and not line.lstrip().startswith("#"):
            lines[i] = line.partition("=")[0] + "= " + draw(RAW_VALUES)
        elif kind == "delete" and lines:
            del lines[i]
        elif kind == "duplicate" and lines:
            lines.insert(i, line)
        elif kind == "insert":
            lines.insert(
                i, draw(st.one_of(TEXT, st.sampled_from(["[pipeline]", "[[data]]", "x ="])))
            )
        elif kind == "cut" and lines:
            lines[i] = line[: draw(st.integers(0, len(line)))]
        elif lines:
            j = draw(st.integers(0, len(line)))
            lines[i] = line[:j] + draw(st.characters()) + line[j + 1 :]
    return "\n".join(lines) + "\n"


def validate(path: Path, *args: str):
    with no_hang():
        return CliRunner().invoke(cli, ["validate", str(path), *args])


def assert_validate_contract(result, *names: str) -> None:
    """Exit 0, or a QslmError's exit code with one message naming the file, key or option."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: the bug this fuzzing is for
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        assert result.output.rstrip().endswith("ok"), result.output
        return
    assert result.exit_code in (1, 2), result.output
    assert "Error: " in result.output, result.output
    assert any(n in result.output for n in names), result.output


@pytest.mark.parametrize("example", EXAMPLES)
@fuzz(examples=15)
@given(data=st.data())
def test_mutated_example_pipelines_validate_or_name_the_problem(examples, example, data):
    original = examples / example
    text = data.draw(mutated(original.read_text(encoding="utf-8")))
    path = original.with_name("fuzzed.toml")
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    # keys, a table's name or the file: which one depends on the edit, the file always fits
    assert_validate_contract(validate(path), "fuzzed.toml", "--set")


@fuzz(examples=40)
@given(data=st.data())
def test_set_values_validate_or_name_the_key(examples, data):
    path = examples / "quickstart" / "pipeline.toml"
    keys = leaf_keys(tomllib.loads(path.read_text(encoding="utf-8")))
    key = data.draw(st.one_of(st.sampled_from(keys), st.sampled_from(keys).map(lambda k: k + ".x")))
    value = data.draw(RAW_VALUES)
    result = validate(path, "--set", f"{key}={value}")
    assert_validate_contract(result, "pipeline.toml", "--set")


# --- QUBO files ------------------------------------------------------------------------------

# Counts a header may declare: small, or far too large; not the legal but slow middle
# (10^7 variables validly take seconds and hundreds of MB).
COUNTS = st.one_of(st.integers(-2, 12), st.sampled_from([10**12, 10**30, 2**63]))
WEIGHTS = st.one_of(
    NUMBERS.map(lambda v: repr(v) if isinstance(v, float) else str(v)),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "0x10", "1_0", "w"]),
)


@st.composite
def qubo_texts(draw) -> str:
    lines = draw(
        st.lists(st.sampled_from(["c a comment", "c qslm sense max", "", "  "]), max_size=2)
    )
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["c qslm offset ", "c qslm offset x"])) + draw(WEIGHTS))
    n, nodes, couplers = draw(COUNTS), draw(COUNTS), draw(COUNTS)
    lines.append(
        draw(st.sampled_from(["p qubo 0", "p qubo 1", "p qubo", "p"])) + f" {n} {nodes} {couplers}"
    )
    index = st.one_of(st.integers(-1, 12).map(str), st.sampled_from(["a", "1.5", "1e3"]))
    for _ in range(draw(st.integers(0, 8))):
        i, j = draw(index), draw(index)
        lines.append(f"{i} {j} {draw(WEIGHTS)}")
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(TEXT))
    return "\n".join(lines) + "\n"


def check_qubo(qubo) -> None:
    """A Qubo a reader returned: finite energies at the all-zeros and all-ones points."""
    n = qubo.num_variables
    x = np.vstack([np.zeros(n), np.ones(n)])
    assert np.isfinite(qubo.energies(x)).all()


@fuzz(examples=300)
@given(text=st.one_of(qubo_texts(), st.text(max_size=200)))
def test_qubo_reader_returns_a_qubo_or_names_the_line(text):
    with no_hang():
        try:
            qubo = parse_qubo(text, name="fuzz.qubo")
        except QslmError as exc:
            assert_named(exc, "fuzz.qubo: line ", "fuzz.qubo:")
            return
    check_qubo(qubo)


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=10,
)


@st.composite
def qubo_dicts(draw) -> dict:
    n = draw(st.integers(0, 6))
    linear = draw(st.one_of(st.lists(NUMBERS, min_size=n, max_size=n), JSON_VALUES))
    out: dict = {"linear": linear}
    optional = {
        "format": st.one_of(st.just("qslm-qubo"), JSON_VALUES),
        "version": st.one_of(st.just(1), JSON_VALUES),
        "sense": st.one_of(st.sampled_from(["min", "max"]), JSON_VALUES),
        "offset": NUMBERS,
        "variables": st.one_of(
            st.lists(st.one_of(TEXT, st.integers()), min_size=n, max_size=n), JSON_VALUES
        ),
        "quadratic": st.lists(
            st.one_of(
                st.lists(st.one_of(st.integers(-1, 7), NUMBERS), min_size=3, max_size=3),
                JSON_VALUES,
            ),
            max_size=6,
        ),
        "extra": JSON_VALUES,
    }
    for key, strategy in optional.items():
        if draw(st.booleans()) and (key != "extra" or draw(st.booleans())):
            out[key] = draw(strategy)
    return out


@fuzz(examples=300)
@given(data=st.one_of(qubo_dicts(), JSON_VALUES))
def test_json_qubo_reader_returns_a_qubo_or_names_the_key(data):
    with no_hang():
        try:
            qubo = from_json_dict(data, name="fuzz.json")
        except QslmError as exc:
            assert_named(exc, "fuzz.json")
            return
    check_qubo(qubo)


@fuzz(examples=100)
@given(text=st.one_of(st.text(max_size=100), st.integers(1, 3000).map(lambda k: "[" * k + "]" * k)))
def test_json_qubo_text_returns_a_qubo_or_names_the_problem(text):
    with no_hang():
        try:
            qubo = parse_json(text, name="fuzz.json")
        except QslmError as exc:
            assert_named(exc, "fuzz.json")
            return
    check_qubo(qubo)


# --- data files ------------------------------------------------------------------------------

RECORD_FIELDS = ["text", "instruction", "input", "output", "messages", "role", "content", "prompt"]


@st.composite
def jsonl_lines(draw) -> str:
    record = st.dictionaries(st.sampled_from(RECORD_FIELDS), JSON_VALUES, max_size=4)
    messages = st.lists(
        st.fixed_dictionaries(
            {"role": st.one_of(st.sampled_from(["user", "assistant", "system"]), JSON_VALUES)},
            optional={"content": st.one_of(TEXT, JSON_VALUES)},
        ),
        max_size=3,
    ).map(lambda m: {"messages": m})
    line = st.one_of(
        record.map(json.dumps), messages.map(json.dumps), JSON_VALUES.map(json.dumps), TEXT
    )
    return "\n".join(draw(st.lists(line, max_size=6)))


def data_ctx(build: Path) -> RunContext:
    return RunContext(config=None, registry=None, build_dir=build, seed=0)


@fuzz(examples=120)
@given(
    content=jsonl_lines(),
    fmt=st.sampled_from(["auto", "alpaca", "chat", "text"]),
    bom=st.booleans(),
)
def test_jsonl_records_load_or_name_the_line(content, fmt, bom):
    with tempfile.TemporaryDirectory() as tmp, no_hang():
        folder = Path(tmp)
        (folder / "data.jsonl").write_bytes(
            (b"\xef\xbb\xbf" if bom else b"") + content.encode("utf-8", "surrogatepass")
        )
        source = JsonlSource(JsonlOptions(paths=["data.jsonl"], format=fmt), base_dir=folder)
        try:
            source.plan()
            dataset = source.load(data_ctx(folder))
        except QslmError as exc:
            assert_named(exc, "data.jsonl", "data.options")
            return
        assert all(isinstance(r, dict) for r in dataset.train + dataset.validation)


@fuzz(examples=80)
@given(
    content=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
    mode=st.sampled_from(["paragraphs", "instructions"]),
)
def test_text_corpus_loads_or_names_the_file(content, mode):
    with tempfile.TemporaryDirectory() as tmp, no_hang():
        folder = Path(tmp)
        (folder / "corpus.md").write_bytes(content)
        source = TextSource(TextOptions(paths=["corpus.md"], mode=mode), base_dir=folder)
        try:
            source.plan()  # validate's checks, then run's
            dataset = source.load(data_ctx(folder))
        except QslmError as exc:
            assert_named(exc, "corpus.md", "data.options")
            return
        assert dataset.train and all(r["text"] for r in dataset.train)
