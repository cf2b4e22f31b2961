"""Documentation stays in step with the code: every hook and every option of every built-in
component is named in the README (datasette's rule: undocumented means unfinished)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qslm import hookspecs
from qslm.plugins import collect, make_plugin_manager

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _builtin_components():
    pm, registry = make_plugin_manager(entry_points=False)
    collect(pm, registry)
    return [spec for spec in registry.all() if spec.distribution == "qslm-core"]


@pytest.mark.parametrize("hook", [n for n in dir(hookspecs) if n.startswith("qslm_")])
def test_every_hook_is_documented(hook):
    assert hook in README


@pytest.mark.parametrize("spec", _builtin_components(), ids=lambda s: f"{s.kind}:{s.name}")
def test_every_builtin_option_is_documented(spec):
    assert f"`{spec.name}`" in README, f"{spec.kind} {spec.name!r} is not in the README"
    missing = [
        name for name in spec.load().Options.model_fields if not re.search(rf"\b{name}\b", README)
    ]
    assert not missing, f"options of {spec.name!r} missing from the README: {missing}"


def test_select_options_are_documented():
    from qslm.stages.select import SelectOptions

    missing = [n for n in SelectOptions.model_fields if not re.search(rf"\b{n}\b", README)]
    assert not missing
