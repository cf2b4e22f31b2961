"""Versioned builds: staging, atomic publish, numbering under concurrency, redaction."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from qslm.builds import BuildStore, read_manifest, redact, resolve_build
from qslm.errors import ConfigError


def _publish(root: str, tag: int) -> str:
    store = BuildStore(Path(root), "demo")
    staging = store.create_staging()
    (staging / "weights.bin").write_text(str(tag))
    return store.publish(staging, {"tag": tag}).name


def test_publish_numbers_builds_and_writes_manifest(tmp_path):
    store = BuildStore(tmp_path, "demo")
    assert _publish(str(tmp_path), 1) == "v1"
    assert _publish(str(tmp_path), 2) == "v2"
    assert store.versions() == [1, 2]
    assert read_manifest(store.path(2)) == {"tag": 2, "version": "v2"}
    assert not [p for p in store.dir.iterdir() if p.name.startswith(".staging")]


def test_incomplete_build_is_never_a_version(tmp_path):
    store = BuildStore(tmp_path, "demo")
    staging = store.create_staging()
    (staging / "half-written").write_text("x")
    assert store.versions() == []
    (tmp_path / "demo" / "v7").mkdir()  # a folder without manifest is not a build...
    assert store.versions() == []
    assert _publish(str(tmp_path), 1) == "v8"  # ...but its number is never reused


def test_concurrent_publishes_get_distinct_versions(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        names = pool.starmap(_publish, [(str(tmp_path), i) for i in range(12)])
    assert sorted(names, key=lambda n: int(n[1:])) == [f"v{i}" for i in range(1, 13)]
    tags = {json.loads((tmp_path / "demo" / n / "manifest.json").read_text())["tag"] for n in names}
    assert tags == set(range(12))


def test_redact_hides_secret_looking_keys():
    tree = {
        "a": 1,
        "api_token": "s3cret",
        "nested": [{"connection_string": "Endpoint=x"}],
        "password": "",
    }
    assert redact(tree) == {
        "a": 1,
        "api_token": "***",
        "nested": [{"connection_string": "***"}],
        "password": "",
    }


def test_resolve_build_by_name_and_version(tmp_path):
    _publish(str(tmp_path), 1)
    _publish(str(tmp_path), 2)
    assert resolve_build("demo@v1", tmp_path).name == "v1"
    assert resolve_build("demo@latest", tmp_path).name == "v2"
    with pytest.raises(ConfigError, match="no build 'v9'"):
        resolve_build("demo@v9", tmp_path)
    with pytest.raises(ConfigError, match="not a qslm build"):
        resolve_build(str(tmp_path), tmp_path)
