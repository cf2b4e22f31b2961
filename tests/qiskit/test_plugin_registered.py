"""qslm-backend-qiskit installs beside qslm-core alone and registers through its entry point."""

from __future__ import annotations

import json

from click.testing import CliRunner

from qslm.cli import cli
from qslm.testing import check_listing_is_light, check_plugin_listed


def test_plugin_is_found_through_its_entry_point():
    row = check_plugin_listed("qiskit", "qslm-backend-qiskit")
    assert set(row["hooks"]) == {"qslm_register_qubo_solvers", "qslm_register_attention_backends"}


def test_both_components_are_listed_with_lazy_targets():
    rows = json.loads(CliRunner().invoke(cli, ["plugins", "--json"]).output)
    listed = {
        (r["kind"], r["name"]): r["target"]
        for r in rows
        if "target" in r and r["plugin"] == "qiskit"
    }
    assert listed[("qubo_solver", "qiskit.qaoa")] == "qslm_qiskit.qaoa:QaoaSolver"
    assert listed[("attention", "qiskit.sampled")] == "qslm_qiskit.sampled:QiskitSampledAttention"


def test_listing_does_not_import_the_backend_sdk():
    check_listing_is_light()
