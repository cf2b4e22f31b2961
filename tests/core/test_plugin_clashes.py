"""Plugin-author traps in loading and collecting: name clashes are isolated like a failed
import, and registration hooks are called the way pluggy allows them to be written."""

from __future__ import annotations

import json
import os
import subprocess
import types

import pytest

from qslm.errors import ComponentNotFound, PluginError
from qslm.hookspecs import hookimpl
from qslm.plugins import collect, make_plugin_manager
from qslm.qubo.io import write_qubo
from qslm.testing import random_qubo


def _plugin(name: str, dist: str, **hooks) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__qslm_distribution__ = dist
    for hook_name, fn in hooks.items():
        setattr(mod, hook_name, hookimpl(fn))
    return mod


def _solvers(*names: str):
    def qslm_register_qubo_solvers(register):
        for name in names:
            register(name, "qslm.qubo.tabu:TabuSolver")

    return qslm_register_qubo_solvers


def _collect(*plugins):
    pm, registry = make_plugin_manager(plugins, entry_points=False)
    return collect(pm, registry)


# --- component-name clashes, in process ----------------------------------------------------


def test_a_plugin_claiming_a_builtin_name_is_reported_and_the_builtin_keeps_it(clean_env):
    plugin = _plugin(
        "squatter", "squatter-dist", qslm_register_qubo_solvers=_solvers("anneal", "sq.ok")
    )
    registry = _collect(plugin)
    assert registry.get("qubo_solver", "anneal").distribution == "qslm-core"
    assert registry.get("qubo_solver", "sq.ok").plugin == "squatter"  # its other names work
    [failed] = registry.failed
    assert failed.name == "squatter" and failed.distribution == "squatter-dist"
    assert "'anneal'" in failed.error and "qslm-core" in failed.error


def test_the_builtin_keeps_its_name_whichever_registers_first(clean_env):
    # trylast puts the plugin's implementation before the built-ins in the collection order
    mod = types.ModuleType("early")
    mod.__qslm_distribution__ = "early-dist"
    mod.qslm_register_qubo_solvers = hookimpl(trylast=True)(_solvers("tabu"))
    pm, registry = make_plugin_manager([mod], entry_points=False)
    assert pm.hook.qslm_register_qubo_solvers.get_hookimpls()[0].plugin_name == "early"
    collect(pm, registry)
    assert registry.get("qubo_solver", "tabu").distribution == "qslm-core"
    assert [(f.name, f.distribution) for f in registry.failed] == [("early", "early-dist")]


def test_two_plugins_claiming_one_name_lose_it_and_both_are_named(clean_env):
    a = _plugin("plug_a", "a-dist", qslm_register_qubo_solvers=_solvers("shared.name", "a.only"))
    b = _plugin("plug_b", "b-dist", qslm_register_qubo_solvers=_solvers("shared.name"))
    registry = _collect(a, b)
    assert sorted(f.distribution for f in registry.failed) == ["a-dist", "b-dist"]
    for f in registry.failed:
        assert "a-dist" in f.error and "b-dist" in f.error and "'shared.name'" in f.error
    with pytest.raises(ComponentNotFound, match=r"a-dist.*b-dist|b-dist.*a-dist"):
        registry.get("qubo_solver", "shared.name")
    assert registry.get("qubo_solver", "a.only").plugin == "plug_a"
    assert registry.get("qubo_solver", "tabu").distribution == "qslm-core"


def test_strict_mode_makes_a_component_clash_fatal(clean_env, monkeypatch):
    monkeypatch.setenv("QSLM_STRICT_PLUGINS", "1")
    plugin = _plugin("squatter", "squatter-dist", qslm_register_qubo_solvers=_solvers("anneal"))
    with pytest.raises(PluginError, match=r"squatter-dist.*qslm-core|qslm-core.*squatter-dist"):
        _collect(plugin)


# --- registration hooks through pluggy -----------------------------------------------------


def test_an_implementation_may_leave_out_the_register_argument(clean_env):
    called = []
    plugin = _plugin("quiet", "quiet-dist", qslm_register_trainers=lambda: called.append(1))
    registry = _collect(plugin)
    assert called == [1] and registry.failed == []


def test_a_registration_made_by_a_method_is_attributed_to_its_plugin(clean_env):
    class Plugin:
        __qslm_distribution__ = "obj-dist"

        @hookimpl
        def qslm_register_evaluators(self, register):
            register("obj.eval", "qslm.evaluate.perplexity:PerplexityEvaluator")

    registry = _collect(Plugin())
    spec = registry.get("evaluator", "obj.eval")
    assert spec.distribution == "obj-dist" and registry.failed == []


@pytest.mark.parametrize("marker", [{"wrapper": True}, {"hookwrapper": True}])
def test_a_wrapper_implementation_of_a_registration_hook_is_refused(clean_env, marker):
    def qslm_register_qubo_solvers(register):
        register("wrapped", "qslm.qubo.tabu:TabuSolver")
        yield

    mod = types.ModuleType("wrapping")
    mod.__qslm_distribution__ = "wrap-dist"
    mod.qslm_register_qubo_solvers = hookimpl(**marker)(qslm_register_qubo_solvers)
    registry = _collect(mod)
    [failed] = registry.failed
    assert failed.name == "wrapping" and "wrapper" in failed.error
    assert "qslm_register_qubo_solvers" in failed.error
    assert "wrapped" not in registry.components["qubo_solver"]
    assert registry.get("qubo_solver", "tabu")


# --- entry points, through the real command ------------------------------------------------


def _distribution(site, dist: str, entry_points: dict[str, str], modules: dict[str, str]):
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[qslm]\n{lines}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)


REGISTERS = (
    "from qslm.hookspecs import hookimpl\n"
    "@hookimpl\n"
    "def qslm_register_qubo_solvers(register):\n"
    "    for name in {names!r}:\n"
    "        register(name, 'qslm.qubo.tabu:TabuSolver')\n"
)


@pytest.fixture
def clashing_site(tmp_path):
    """Two distributions with the entry point ``greedy``, one plugin claiming ``anneal``."""
    site = tmp_path / "site"
    site.mkdir()
    for dist, module in (("alpha-dist", "alpha_plugin"), ("beta-dist", "beta_plugin")):
        source = REGISTERS.format(names=[f"{module}.solver"])
        _distribution(site, dist, {"greedy": module}, {module: source})
    source = REGISTERS.format(names=["anneal", "gamma.solver"])
    _distribution(site, "gamma-dist", {"gamma": "gamma_plugin"}, {"gamma_plugin": source})
    return {**os.environ, "PYTHONPATH": str(site)}


def _qslm(qslm_cmd, env, *args, **extra_env):
    return subprocess.run(
        [*qslm_cmd, *args],
        capture_output=True,
        text=True,
        env={**env, **extra_env},
        timeout=120,
    )


def test_clashing_plugins_are_listed_as_failed_and_the_rest_keep_working(
    qslm_cmd, clashing_site, clean_env, tmp_path
):
    listed = _qslm(qslm_cmd, clashing_site, "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    failed = {(r["name"], r["distribution"]): r["error"] for r in rows if r["kind"] == "failed"}
    assert set(failed) == {
        ("greedy", "alpha-dist"),
        ("greedy", "beta-dist"),
        ("gamma", "gamma-dist"),
    }
    assert (
        "alpha-dist" in failed["greedy", "beta-dist"] and "unique" in failed["greedy", "beta-dist"]
    )
    assert "'anneal'" in failed["gamma", "gamma-dist"]
    solvers = {r["name"]: r["distribution"] for r in rows if r["kind"] == "qubo_solver"}
    assert solvers["anneal"] == "qslm-core" and solvers["gamma.solver"] == "gamma-dist"
    assert "alpha_plugin.solver" not in solvers and "beta_plugin.solver" not in solvers

    text = _qslm(qslm_cmd, clashing_site, "plugins")
    assert "greedy (alpha-dist 1.0)" in text.stderr and "greedy (beta-dist 1.0)" in text.stderr

    write_qubo(random_qubo(6, seed=1), tmp_path / "p.qubo")
    solved = _qslm(qslm_cmd, clashing_site, "solve", str(tmp_path / "p.qubo"), "--solver", "tabu")
    assert solved.returncode == 0, solved.stderr
    assert "Traceback" not in solved.stderr


def test_strict_mode_makes_an_entry_point_clash_a_clean_error(qslm_cmd, clashing_site, clean_env):
    strict = _qslm(qslm_cmd, clashing_site, "plugins", QSLM_STRICT_PLUGINS="1")
    assert strict.returncode == 2
    assert "alpha-dist" in strict.stderr and "beta-dist" in strict.stderr
    assert "Traceback" not in strict.stderr
