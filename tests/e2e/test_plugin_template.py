"""`qslm plugin new KIND NAME` writes packages that pip-install, show up in `qslm plugins`
and pass their own generated tests (qslm's conformance kits) as generated."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

KINDS = {"solver": "qubo_solver", "evaluator": "evaluator", "data-source": "data_source"}
KINDS |= {"attention": "attention", "trainer": "trainer"}


def qslm(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-c", "from qslm.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[dict[str, Path], dict[str, str]]:
    """One package per kind, pip-installed (no dependencies) into one private folder."""
    root = tmp_path_factory.mktemp("plugins")
    packages = {}
    for kind in KINDS:
        result = qslm("plugin", "new", kind, f"acme.{kind}", "--dir", str(root))
        assert result.returncode == 0, result.stderr
        packages[kind] = Path(result.stdout.strip())
    site = tmp_path_factory.mktemp("site")
    # Without build isolation when the environment has hatchling (the e2e session installs
    # it): the same wheels, without fetching hatchling into four throwaway environments.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("hatchling") else []
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", *isolation, "--target", str(site)]
        + [str(p) for p in packages.values()],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return packages, {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}


def test_every_kind_is_listed_by_its_distribution(generated):
    _, env = generated
    result = qslm("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout) if r["kind"] != "plugin"}
    for kind, registered in KINDS.items():
        row = rows[f"acme.{kind}"]
        assert (row["kind"], row["distribution"]) == (registered, f"qslm-acme-{kind}")
    described = qslm("describe", "acme.solver", env=env)
    assert described.returncode == 0 and "keep" in described.stdout, described.stderr


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_generated_tests_pass_as_generated(generated, kind):
    packages, env = generated
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        env=env,
        cwd=packages[kind],
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
