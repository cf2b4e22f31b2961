"""The plugin manager: built-ins, throwaway plugins, duplicates, failures, blocking."""

from __future__ import annotations

import json
import subprocess
import types

import pytest

from qslm.errors import ComponentNotFound, PluginError
from qslm.hookspecs import hookimpl
from qslm.plugins import collect, make_plugin_manager


def _plugin(name: str, **hooks) -> types.ModuleType:
    mod = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(mod, hook_name, hookimpl(fn))
    return mod


def test_builtins_register_through_the_hooks(clean_env):
    pm, registry = make_plugin_manager(entry_points=False)
    collect(pm, registry)
    names = {(s.kind, s.name) for s in registry.all()}
    assert {
        ("data_source", "text"),
        ("trainer", "scratch"),
        ("attention", "exact"),
        ("evaluator", "perplexity"),
    } <= names
    spec = registry.get("trainer", "scratch")
    assert spec.distribution == "qslm-core" and spec.plugin == "qslm.train.plugin"


def test_throwaway_plugin_registers_and_loads_lazily(clean_env):
    def qslm_register_evaluators(register):
        register("count", "qslm.data.text:TextSource", summary="lazy target")

    plugin = _plugin("throwaway", qslm_register_evaluators=qslm_register_evaluators)
    pm, registry = make_plugin_manager([plugin], entry_points=False)
    try:
        collect(pm, registry)
        spec = registry.get("evaluator", "count")
        assert spec.plugin == "throwaway" and spec.target == "qslm.data.text:TextSource"
        assert spec.load().__name__ == "TextSource"
    finally:
        pm.unregister(plugin)


def test_two_plugins_with_one_name_is_an_error_naming_both(clean_env, monkeypatch):
    # Reported like a failed import (the built-in keeps its name); fatal in strict mode.
    # More clash cases: test_plugin_clashes.py.
    def qslm_register_trainers(register):
        register("scratch", "x.y:Z")

    plugin = _plugin("copycat", qslm_register_trainers=qslm_register_trainers)
    plugin.__qslm_distribution__ = "copycat-dist"
    pm, registry = make_plugin_manager([plugin], entry_points=False)
    collect(pm, registry)
    [failed] = registry.failed
    assert registry.get("trainer", "scratch").distribution == "qslm-core"
    monkeypatch.setenv("QSLM_STRICT_PLUGINS", "1")
    pm, registry = make_plugin_manager([plugin], entry_points=False)
    with pytest.raises(PluginError) as info:
        collect(pm, registry)
    for message in (str(info.value), failed.error):
        assert "qslm-core" in message and "copycat-dist" in message and "'scratch'" in message


def test_unknown_name_suggests_close_match_and_install_hint(clean_env):
    pm, registry = make_plugin_manager(entry_points=False)
    collect(pm, registry)
    with pytest.raises(ComponentNotFound, match="did you mean 'scratch'"):
        registry.get("trainer", "scrach", key="train.trainer")
    with pytest.raises(ComponentNotFound, match="pip install qslm-backend-dwave"):
        registry.get("qubo_solver", "dwave.qpu", key="select.solver")
    with pytest.raises(ComponentNotFound, match="pip install qslm-unsloth"):
        registry.get("trainer", "unsloth")


def test_broken_import_target_is_a_plugin_error(clean_env):
    def qslm_register_trainers(register):
        register("broken", "no_such_module_xyz:Trainer")

    plugin = _plugin("broken", qslm_register_trainers=qslm_register_trainers)
    pm, registry = make_plugin_manager([plugin], entry_points=False)
    collect(pm, registry)
    with pytest.raises(PluginError, match="no_such_module_xyz"):
        registry.get("trainer", "broken").load()


def test_failing_hook_is_reported_and_others_keep_working(clean_env, monkeypatch):
    def qslm_register_trainers(register):
        raise RuntimeError("boom")

    plugin = _plugin("faulty", qslm_register_trainers=qslm_register_trainers)
    pm, registry = make_plugin_manager([plugin], entry_points=False)
    collect(pm, registry)
    assert [f.name for f in registry.failed] == ["faulty"]
    assert "boom" in registry.failed[0].error
    assert registry.get("trainer", "scratch")

    monkeypatch.setenv("QSLM_STRICT_PLUGINS", "1")
    pm, registry = make_plugin_manager([plugin], entry_points=False)
    with pytest.raises(PluginError, match="boom"):
        collect(pm, registry)


def test_disable_plugins_blocks_by_name(clean_env, monkeypatch):
    monkeypatch.setenv("QSLM_DISABLE_PLUGINS", "qslm.evaluate.plugin, other")
    pm, registry = make_plugin_manager(entry_points=False)
    collect(pm, registry)
    assert "perplexity" not in registry.components["evaluator"]
    assert "scratch" in registry.components["trainer"]


def _with_fake_entry_point(tmp_path, module_source: str, name: str = "fakeplug") -> dict:
    """A real installed-looking distribution (dist-info with entry_points.txt) on PYTHONPATH."""
    site = tmp_path / "site"
    (site / "fake_dist-1.2.3.dist-info").mkdir(parents=True)
    (site / "fake_dist-1.2.3.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-dist\nVersion: 1.2.3\n"
    )
    (site / "fake_dist-1.2.3.dist-info" / "entry_points.txt").write_text(
        f"[qslm]\n{name} = fake_qslm_plugin\n"
    )
    (site / "fake_qslm_plugin.py").write_text(module_source)
    return {"PYTHONPATH": str(site)}


def _plugins_json(qslm_cmd, env, extra_env=None):
    import os

    full = {**os.environ, **env, **(extra_env or {})}
    return subprocess.run(
        [*qslm_cmd, "plugins", "--json"], capture_output=True, text=True, env=full, timeout=120
    )


def test_entry_point_plugin_that_fails_to_import_is_reported(tmp_path, qslm_cmd, clean_env):
    env = _with_fake_entry_point(tmp_path, "raise ImportError('missing sdk')\n")
    result = _plugins_json(qslm_cmd, env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    failed = [r for r in rows if r["kind"] == "failed"]
    assert failed == [
        {
            "kind": "failed",
            "name": "fakeplug",
            "plugin": "fakeplug",
            "distribution": "fake-dist",
            "version": "1.2.3",
            "error": "ImportError: missing sdk",
        }
    ]
    assert any(r["name"] == "scratch" for r in rows)

    strict = _plugins_json(qslm_cmd, env, {"QSLM_STRICT_PLUGINS": "1"})
    assert strict.returncode == 2
    assert "fake-dist" in strict.stderr and "missing sdk" in strict.stderr
    assert "Traceback" not in strict.stderr


def test_entry_point_plugin_registers_and_can_be_disabled(tmp_path, qslm_cmd, clean_env):
    source = (
        "from qslm.hookspecs import hookimpl\n"
        "@hookimpl\n"
        "def qslm_register_evaluators(register):\n"
        "    register('fake.eval', 'fake_qslm_plugin:Nothing')\n"
    )
    env = _with_fake_entry_point(tmp_path, source)
    rows = json.loads(_plugins_json(qslm_cmd, env).stdout)
    [row] = [r for r in rows if r["name"] == "fake.eval"]
    assert row == {
        **row,
        "kind": "evaluator",
        "plugin": "fakeplug",
        "distribution": "fake-dist",
        "version": "1.2.3",
    }
    rows = json.loads(_plugins_json(qslm_cmd, env, {"QSLM_DISABLE_PLUGINS": "fakeplug"}).stdout)
    assert not [r for r in rows if r["name"] == "fake.eval"]


def test_listing_imports_no_heavy_library():
    from qslm.testing import check_listing_is_light

    for args in (("--help",), ("plugins",), ("plugins", "--json")):
        check_listing_is_light(args)
