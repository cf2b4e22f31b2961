"""Shared fixtures: the repository root, the shared folder and throwaway plugins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, every worker's torch (in-process and in the `qslm run` processes it
    starts) gets its share of the CPUs rather than all of them: two trainings of two threads
    on two cores ran a 400-step run in 240 s instead of 5 s (CI, stop 23)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        from qslm.resources import usable_cpus

        os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cpus() // workers))


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not here (it sits beside the repository in CI)")
    return SHARED


@pytest.fixture
def qslm_cmd() -> list[str]:
    """The qslm command of this environment, run as a module so PATH does not matter."""
    return [sys.executable, "-c", "from qslm.cli import main; main()"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for var in ("QSLM_DISABLE_PLUGINS", "QSLM_STRICT_PLUGINS", "QSLM_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return dict(os.environ)


@pytest.fixture
def validate_in_fresh_process():
    """``qslm validate PIPELINE`` in a new interpreter; its stdout holds the output, then
    ``exit N`` and ``heavy [...]`` (torch and transformers, if the validation imported them)."""

    def run(path: Path, *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        code = (
            "import sys\n"
            "from click.testing import CliRunner\n"
            "from qslm.cli import cli\n"
            f"r = CliRunner().invoke(cli, ['validate', {str(path)!r}])\n"
            "print(r.output)\n"
            "print('exit', r.exit_code)\n"
            "print('heavy', sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
        )
        return subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=path.parent,
        )

    return run
