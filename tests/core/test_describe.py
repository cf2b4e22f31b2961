"""``qslm describe NAME``: any kind, did-you-mean across kinds, a component's own docstring and
its registration summary, and the allowed values of choice options."""

from __future__ import annotations

import ast
import itertools
import types

import pytest
from click.testing import CliRunner

import qslm.plugins
from qslm.cli import cli
from qslm.hookspecs import hookimpl
from qslm.plugins import collect, make_plugin_manager
from qslm.qubo.tabu import TabuSolver


class Undocumented(TabuSolver):
    pass


Undocumented.__doc__ = None  # a class written without a docstring (the base's is inherited)


def _describe(*args: str):
    return CliRunner().invoke(cli, ["describe", *args])


@pytest.fixture
def with_plugin(clean_env, monkeypatch):
    """The process-wide registry with a throwaway plugin whose solver has no docstring."""

    @hookimpl
    def qslm_register_qubo_solvers(register):
        register("plain.solver", Undocumented, summary="What the plugin says it does")

    plugin = types.ModuleType("plainplug")
    plugin.qslm_register_qubo_solvers = qslm_register_qubo_solvers
    pm, registry = make_plugin_manager([plugin], entry_points=False)
    monkeypatch.setattr(qslm.plugins, "_cached", (pm, collect(pm, registry)))


def test_an_unknown_name_is_matched_across_kinds(clean_env):
    result = _describe("tabuu")
    assert result.exit_code == 2
    assert "unknown component 'tabuu'; did you mean 'tabu' (QUBO solver)?" in result.output
    assert "Traceback" not in result.output
    result = _describe("scrach", "--kind", "trainer")
    assert result.exit_code == 2 and "did you mean 'scratch' (trainer)?" in result.output


def test_a_name_of_several_kinds_asks_for_the_kind(clean_env):
    result = _describe("exact")
    assert result.exit_code == 2
    assert "--kind attention" in result.output and "--kind qubo_solver" in result.output
    result = _describe("exact", "--kind", "qubo_solver")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("QUBO solver 'exact' from qslm-core")


def test_a_name_of_another_kind_says_which(clean_env):
    result = _describe("tabu", "--kind", "trainer")
    assert result.exit_code == 2 and "'tabu' is a QUBO solver (--kind qubo_solver)" in result.output


def test_the_registration_summary_and_the_own_docstring_are_shown(clean_env):
    result = _describe("tabu")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        lines[1] == "One-flip tabu search with aspiration and restarts, chains vectorised in numpy"
    )
    assert TabuSolver.__doc__.split("\n")[0].strip() in result.output


def test_a_class_without_a_docstring_shows_its_summary_not_the_base_class_doc(with_plugin):
    result = _describe("plain.solver")
    assert result.exit_code == 0, result.output
    assert "What the plugin says it does" in result.output
    assert TabuSolver.__doc__.split("\n")[0].strip() not in result.output
    assert "Base class of QUBO solvers" not in result.output


def test_choice_options_show_their_allowed_values(clean_env):
    result = _describe("lora")
    assert result.exit_code == 0, result.output
    assert '  template ("auto" | "alpaca" | "chat" | "plain", default "auto")' in result.output
    assert '  quantization ("none" | "nf4", default "none")' in result.output
    assert "Literal" not in result.output


def test_every_builtin_component_is_described(clean_env):
    pm, registry = make_plugin_manager(entry_points=False)
    for spec in collect(pm, registry).all():
        result = _describe(spec.name, "--kind", spec.kind)
        assert result.exit_code == 0, f"{spec.kind} {spec.name}: {result.output}"
        assert "Traceback" not in result.output
    # a default_factory's value is shown, not pydantic's "undefined" marker
    result = _describe("attention-error")
    assert "  backend_options (dict[str, Any], default {})" in result.output


def _attribute_docstrings(path):
    """``Class.field`` of every options field documented by a docstring under it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        bases = [ast.unparse(b) for b in getattr(node, "bases", [])]
        if not isinstance(node, ast.ClassDef) or not any(b.endswith("Options") for b in bases):
            continue
        for field, after in itertools.pairwise(node.body):
            doc = after.value if isinstance(after, ast.Expr) else None
            if isinstance(field, ast.AnnAssign) and isinstance(getattr(doc, "value", None), str):
                yield f"{path.name}:{field.lineno} {node.name}.{ast.unparse(field.target)}"


def test_options_are_described_one_way(repo_root):
    # Field(description=...) throughout our packages; attribute docstrings still work for
    # third-party plugins (use_attribute_docstrings stays on), but ours use one way.
    found = [
        hit
        for path in sorted(repo_root.glob("qslm-*/src/**/*.py"))
        for hit in _attribute_docstrings(path)
    ]
    assert not found, f"options described by attribute docstrings: {found}"
