"""`qslm validate` shows the QAOA pre-flight numbers of a fake IBM device: its qubits and the
transpiled depth and two-qubit gate count of complete problems on it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from qslm.cli import cli

PIPELINE = """
[pipeline]
name = "qiskit-select"

[data]
source = "text"
[data.options]
paths = ["*.md"]

[select]
size = 2
solver = "qiskit.qaoa"
fallback = ["anneal"]
[select.solvers."qiskit.qaoa"]
backend = "{backend}"
reps = 2
"""


def validate(tmp_path: Path, backend: str):
    for i in range(3):
        (tmp_path / f"r{i}.md").write_text(f"Record {i} about cats and dogs.")
    (tmp_path / "pipeline.toml").write_text(PIPELINE.format(backend=backend))
    return CliRunner().invoke(cli, ["validate", str(tmp_path / "pipeline.toml")])


def test_validate_reports_the_fake_device_and_transpiled_sizes(tmp_path, clean_env):
    result = validate(tmp_path, "fake:FakeManilaV2")
    assert result.exit_code == 0, result.output
    assert "target: fake_manila (5 qubits; its noise model on Aer); at most 5 variables" in (
        result.output
    )
    # Capped at the device: 4 and 5 variables (12 does not fit), each with its transpiled size.
    for n in (4, 5):
        line = next(x for x in result.output.splitlines() if f"complete {n}-variable" in x)
        assert f"{n} qubits, depth " in line and "two-qubit gates after transpiling" in line
        gates = int(line.split("depth ")[1].split(",")[1].split()[0])
        assert gates >= n * (n - 1) // 2 * 2 * 2  # reps 2 x one ZZ term (2 CX) per pair, at least


def test_validate_refuses_an_unknown_fake_device_naming_the_key(tmp_path, clean_env):
    result = validate(tmp_path, "fake:FakeManila")
    assert result.exit_code == 2, result.output
    assert "option backend 'fake:FakeManila'" in result.output
    assert "did you mean 'FakeManilaV2'" in result.output and "Traceback" not in result.output
