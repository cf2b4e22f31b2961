"""The documented shell examples run from a fresh clone: every ```bash block of README.md and
docs/ preceded by ``<!-- docs-test -->`` (docs/contributing.md explains the marker), each with
``bash -e`` in a folder holding a fresh copy of the repository's examples/, as a clone has it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKED = re.compile(r"^<!-- docs-test -->\n```(?:bash|sh)\n(.*?)^```", re.M | re.S)


def marked_blocks() -> list[tuple[str, str]]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [
        (f"{page.relative_to(ROOT)}#{k}", block)
        for page in pages
        for k, block in enumerate(MARKED.findall(page.read_text(encoding="utf-8")), 1)
    ]


BLOCKS = marked_blocks()


def test_the_marked_examples_cover_the_first_steps():
    commands = "\n".join(block for _, block in BLOCKS)
    for needed in ("qslm plugins", "qslm describe", "qslm solve", "qslm bench solvers", "qslm run"):
        assert needed in commands, f"no docs-test example runs {needed!r}"


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A folder laid out like a fresh clone for the examples: examples/ copied, no builds."""
    work = tmp_path_factory.mktemp("clone")
    shutil.copytree(
        ROOT / "examples",
        work / "examples",
        ignore=shutil.ignore_patterns("builds", "__pycache__", "*.egg-info"),
    )
    return work


@pytest.mark.slow
@pytest.mark.parametrize(("where", "block"), BLOCKS, ids=[w for w, _ in BLOCKS])
def test_documented_shell_example_runs(clone, where, block):
    # the interpreter running the tests (and its qslm) comes first on PATH, as for a user
    # inside the activated virtual environment
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        ["bash", "-e", "-c", block],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"{where}:\n{block}\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    )
