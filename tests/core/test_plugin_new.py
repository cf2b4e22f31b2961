"""`qslm plugin new`: names derived from NAME, clean refusals (exit 2) for a bad NAME or
KIND and for an existing folder, and no half-written package."""

from __future__ import annotations

import ast

import pytest
from click.testing import CliRunner

from qslm.cli import cli
from qslm.commands.plugin_new import KINDS, Names, render


def test_names_follow_the_component_name():
    n = Names.of("acme.fast_anneal", "solver")
    assert (n.plugin, n.dist, n.package, n.cls) == (
        "acme-fast-anneal",
        "qslm-acme-fast-anneal",
        "qslm_acme_fast_anneal",
        "AcmeFastAnnealSolver",
    )


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_file_is_filled_and_the_python_parses(kind):
    files = render(kind, Names.of("acme.x", kind))
    assert {"pyproject.toml", "README.md"} <= set(files)
    for path, text in files.items():
        assert "${" not in text, path
        if path.endswith(".py"):
            ast.parse(text, path)
    assert 'acme-x = "qslm_acme_x.plugin"' in files["pyproject.toml"]


@pytest.mark.parametrize("name", ["Acme.X", "1acme", "acme..x", "acme x", "acme.x-", ""])
def test_a_bad_name_is_refused_with_exit_2(name, tmp_path):
    result = CliRunner().invoke(cli, ["plugin", "new", "solver", name, "--dir", str(tmp_path)])
    assert result.exit_code == 2 and f"NAME {name!r}" in result.output
    assert "Traceback" not in result.output and not list(tmp_path.iterdir())


def test_a_bad_kind_is_refused_with_exit_2(tmp_path):
    result = CliRunner().invoke(cli, ["plugin", "new", "robot", "acme.x", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "'robot' is not one of" in result.output


def test_an_existing_folder_is_never_overwritten(tmp_path):
    args = ["plugin", "new", "evaluator", "acme.x", "--dir", str(tmp_path)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    target = tmp_path / "qslm-acme-x"
    (target / "README.md").write_text("mine")
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 2 and "already exists" in second.output
    assert (target / "README.md").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["qslm-acme-x"]  # no staging folder left
