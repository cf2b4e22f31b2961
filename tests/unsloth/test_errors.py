"""Mistakes and refusals end at pre-flight with one clear message and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import qslm

from qslm.testing import check_listing_is_light


@pytest.mark.parametrize("command", ["run", "validate"])
def test_no_gpu_and_cpu_fallback_disabled_fails_at_once(project, command):
    builds = project / "builds" / "tiny-unsloth"
    before = sorted(builds.iterdir()) if builds.exists() else []
    done = qslm(project, command, "pipeline.toml", env={"UNSLOTH_DISABLE_CPU_FALLBACK": "1"})
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "train.trainer: no GPU found and UNSLOTH_DISABLE_CPU_FALLBACK=1" in done.stderr
    # refused before any stage ran: no data read, no build or staging folder left
    assert "[data]" not in done.stderr
    assert (sorted(builds.iterdir()) if builds.exists() else []) == before


def test_quantization_option_points_to_load_in_4bit(project):
    done = qslm(project, "validate", "pipeline.toml", "--set", 'train.options.quantization="nf4"')
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "load_in_4bit" in done.stderr and "train.options" in done.stderr


def test_missing_base_model_is_named(project):
    done = qslm(project, "validate", "pipeline.toml", "--set", 'train.options.base_model="nope"')
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "train.options.base_model" in done.stderr and "nope" in done.stderr


def test_listing_and_help_import_neither_unsloth_nor_torch():
    heavy = ("unsloth", "unsloth_zoo", "torch", "transformers", "peft", "trl")
    check_listing_is_light(("plugins",), heavy=heavy)
    check_listing_is_light(("--help",), heavy=heavy)
    check_listing_is_light(("describe", "unsloth"), heavy=heavy)


def test_unsloth_missing_is_named_with_the_install_commands(project):
    code = "import sys; sys.modules['unsloth'] = None\nfrom qslm.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "validate", "pipeline.toml"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "train.trainer: the unsloth trainer needs unsloth, which is not installed" in done.stderr
    assert "pip install --no-deps unsloth==" in done.stderr


def test_transformers_imported_first_is_warned_about_and_recorded():
    code = (
        "import warnings; warnings.simplefilter('always')\n"
        "import transformers\n"
        "from qslm_unsloth.first_import import import_unsloth\n"
        "print(import_unsloth().imported_before)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # stdout holds only the result: Unsloth's banner is sent to stderr
    assert done.stdout.strip() == "('transformers',)"
    assert "qslm-unsloth: transformers was imported before Unsloth" in done.stderr
