"""``qslm.api`` is the plugin authors' import surface: every name resolves and is documented,
importing it stays light, and the examples and shipped plugins import from it."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import qslm.api

ROOT = Path(__file__).resolve().parents[2]
# Imports of qslm internals that the first-party packages keep, and why: they are released
# with qslm-core from this repository, so a move inside qslm-core changes them in the same
# commit. A third-party plugin must not rely on these (docs/plugins/compatibility.md).
INTERNAL_ALLOWED = {
    "qslm.secrets": "the remote backends redact tokens with the core's Redactor",
    "qslm.remote": "the remote backends share the core's retry and polling loop",
    "qslm.train.lora": "qslm-unsloth subclasses the LoRA trainer and reuses its options",
    "qslm.errors": "qslm_dwave/errors.py and qslm_qiskit/errors.py subclass the error family",
    "qslm.plugins": "tests look the component up in the registry",
    "qslm.config": "tests load a pipeline file",
    "qslm.testing": "the testing kit's helpers beyond the entry points in qslm.api",
    "qslm.attention": "qslm-qiskit's sampled attention shares the core's probability and mask "
    "code; qslm-unsloth installs the attention backend the way the core trainers do",
    "qslm.train": "qslm-unsloth reuses the core's bitsandbytes check and tokenizer trainer",
    "qslm.qubo.tabu": "qslm-exact warm-starts HiGHS from the core's tabu search",
    "qslm.bench": "examples/qubo/make_instances.py draws its instances with the generator "
    "`qslm bench solvers` uses",
}


def test_every_name_resolves_and_has_its_own_docstring():
    assert len(qslm.api.__all__) == len(set(qslm.api.__all__))
    for name in qslm.api.__all__:
        obj = getattr(qslm.api, name)
        doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
        assert doc and doc.strip(), f"qslm.api.{name} has no docstring of its own"


def test_the_lazy_table_the_static_imports_and_all_agree():
    # the table serves imports at run time, the TYPE_CHECKING imports type checkers and the
    # API reference: both must list exactly __all__
    tree = ast.parse(Path(qslm.api.__file__).read_text(encoding="utf-8"))
    [guarded] = [n for n in tree.body if isinstance(n, ast.If)]
    static = {
        a.asname or a.name: n.module + (f":{a.name}" if a.asname else "")
        for n in guarded.body
        for a in n.names
    }
    assert static == qslm.api._EXPORTS
    assert set(static) == set(qslm.api.__all__)
    assert set(dir(qslm.api)) >= set(qslm.api.__all__)


def test_a_registration_module_importing_hookimpl_stays_cheap():
    code = "import sys\nfrom qslm.api import hookimpl\nprint('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_importing_the_api_is_light():
    code = (
        "import sys\nfrom qslm.api import *\n"
        "heavy = ('torch', 'transformers', 'tokenizers', 'qiskit', 'dwave', 'dimod', 'scipy',"
        " 'matplotlib', 'pytest', 'click')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _qslm_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "qslm" or node.module.startswith("qslm."):
                found.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("qslm."):
                    found.append((node.lineno, alias.name, []))
    return found


def test_examples_and_shipped_plugins_import_from_the_api():
    roots = [ROOT / "examples", *ROOT.glob("qslm-backend-*"), *ROOT.glob("qslm-solver-*")]
    roots.append(ROOT / "qslm-unsloth")
    wrong = []
    for root in roots:
        for path in root.rglob("*.py"):
            for line, module, names in _qslm_imports(path):
                if module == "qslm.api" or (module == "qslm" and names == ["errors"]):
                    continue
                top = next((m for m in INTERNAL_ALLOWED if module.startswith(m)), None)
                if top is None:
                    wrong.append(f"{path.relative_to(ROOT)}:{line}: from {module} import {names}")
    assert not wrong, "import these from qslm.api:\n" + "\n".join(wrong)


def test_a_deprecated_name_works_and_warns(monkeypatch):
    import pytest

    monkeypatch.setitem(
        qslm.api._DEPRECATED, "OldOptions", ("qslm.components:Options", "use qslm.api.Options")
    )
    with pytest.warns(DeprecationWarning, match="OldOptions is deprecated.*use qslm.api.Options"):
        from qslm.api import OldOptions
    assert OldOptions is qslm.api.Options
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        qslm.api.Nothing  # noqa: B018
