"""A fine-tuning base named by build version: ``builds/NAME@latest``, ``@vN``, ``@current``."""

from __future__ import annotations

import json

import pytest

from qslm.builds import BuildStore
from qslm.errors import ConfigError
from qslm.train.base_model import resolve_base


def _fake_build(root, name, version):
    """A build folder as the base resolver reads it: a manifest naming model/, and a model
    folder with a config (the weights are not opened by resolve_base)."""
    build = root / name / f"v{version}"
    (build / "model").mkdir(parents=True)
    (build / "model" / "config.json").write_text("{}")
    (build / "model" / "tokenizer.json").write_text("{}")
    (build / "manifest.json").write_text(json.dumps({"artifact": {"model_dir": "model"}}))
    return build


def test_latest_vn_and_current_pick_the_build(tmp_path):
    builds = tmp_path / "builds"
    _fake_build(builds, "pre", 1)
    _fake_build(builds, "pre", 2)
    key = "train.options.base_model"
    latest = resolve_base("builds/pre@latest", tmp_path, key)
    assert latest.folder == (builds / "pre" / "v2" / "model").resolve()
    assert latest.origin == "build"
    assert resolve_base("builds/pre@v1", tmp_path, key).folder.parent.name == "v1"
    BuildStore(builds, "pre").promote(1)
    assert resolve_base("builds/pre@current", tmp_path, key).folder.parent.name == "v1"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("builds/pre@v7", "no build 'v7' of 'pre' (have v1)"),
        ("builds/other@latest", "no builds of 'other'"),
    ],
)
def test_a_missing_version_is_named(tmp_path, value, message):
    _fake_build(tmp_path / "builds", "pre", 1)
    with pytest.raises(ConfigError) as info:
        resolve_base(value, tmp_path, "train.options.base_model")
    assert str(info.value).startswith("train.options.base_model: ")
    assert message in str(info.value)
