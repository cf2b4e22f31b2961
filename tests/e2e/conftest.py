"""Fixtures of the end-to-end tests: packages pip-installed the way a user installs them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pip_installed(tmp_path_factory) -> Callable[[Path], dict[str, str]]:
    """``pip_installed(package_dir)`` pip-installs a package (no dependencies) into a private
    folder and returns an environment with that folder on PYTHONPATH."""

    def install(package: Path) -> dict[str, str]:
        target = tmp_path_factory.mktemp("site")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--target",
                str(target),
                str(package),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1"}

    return install
