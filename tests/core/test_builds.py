"""Versioned builds: staging, atomic publish, numbering under concurrency, redaction."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from qslm.builds import BuildStore, read_manifest, redact, resolve_build
from qslm.compare import compare_builds
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


def _manifest(lr: float, perplexity: float, version: str = "0.1.0") -> dict:
    return {
        "created": "2026-01-01T00:00:00+00:00",
        "pipeline": {
            "config": {
                "pipeline": {"name": "demo"},
                "train": {"options": {"learning_rate": lr, "layers": 2}},
                "data": {"options": {"paths": ["a.txt"]}},
            }
        },
        "components": {
            "train": {"name": "scratch", "distribution": "qslm-core", "version": version}
        },
        "metrics": {"perplexity": {"perplexity": perplexity, "eval_tokens": 100}},
        "versions": {"torch": "2.13.0"},
    }


def _publish_manifest(root: Path, manifest: dict, name: str = "demo") -> Path:
    store = BuildStore(root, name)
    return store.publish(store.create_staging(), manifest)


def test_promote_moves_current_and_rolls_back(tmp_path):
    for lr in (0.1, 0.2, 0.3):
        _publish_manifest(tmp_path, _manifest(lr, 10.0))
    store = BuildStore(tmp_path, "demo")
    assert store.current() is None
    assert resolve_build("demo@current", tmp_path).name == "v3"  # never promoted: latest
    store.promote(2)
    assert resolve_build("demo@current", tmp_path).name == "v2"
    _publish_manifest(tmp_path, _manifest(0.4, 9.0))  # a new build does not move current
    assert resolve_build("demo@current", tmp_path).name == "v2"
    store.promote(1)  # rolling back is promoting an older build
    assert (tmp_path / "demo" / "CURRENT").read_text() == "v1\n"
    assert resolve_build("current", tmp_path).name == "v1"
    with pytest.raises(ConfigError, match="no build v9 to promote"):
        store.promote(9)
    assert not list((tmp_path / "demo").glob(".CURRENT*"))  # no temporary file left


def test_bare_version_needs_a_single_pipeline(tmp_path):
    _publish_manifest(tmp_path, _manifest(0.1, 10.0))
    assert resolve_build("v1", tmp_path).name == "v1"
    _publish_manifest(tmp_path, _manifest(0.1, 10.0), name="other")
    with pytest.raises(ConfigError, match=r"say which pipeline, as NAME@v1.*demo, other"):
        resolve_build("v1", tmp_path)
    assert resolve_build("other@v1", tmp_path).parent.name == "other"


def test_compare_reports_config_metrics_and_versions():
    old, new = _manifest(0.1, 20.0), _manifest(0.3, 15.0, version="0.2.0")
    new["pipeline"]["config"]["train"]["options"]["dropout"] = 0.1
    del new["pipeline"]["config"]["data"]["options"]["paths"]
    diff = compare_builds(old, new)
    config = {row["key"]: (row["old"], row["new"]) for row in diff["config"]}
    assert config == {
        "train.options.learning_rate": (0.1, 0.3),
        "train.options.dropout": ("(absent)", 0.1),
        "data.options.paths": (["a.txt"], "(absent)"),
    }
    [metric] = diff["metrics"]
    assert metric["key"] == "perplexity.perplexity"
    assert metric["delta"] == pytest.approx(-5.0) and metric["relative"] == pytest.approx(-0.25)
    assert diff["versions"] == [
        {
            "key": "components.train",
            "old": "scratch qslm-core 0.1.0",
            "new": "scratch qslm-core 0.2.0",
        }
    ]
    assert compare_builds(old, old) == {"config": [], "metrics": [], "versions": []}


def _cli(*args: str, cwd: Path | None = None):
    from click.testing import CliRunner

    from qslm.cli import cli

    runner = CliRunner()
    if cwd is None:
        return runner.invoke(cli, list(args))
    with runner.isolated_filesystem(temp_dir=cwd):
        return runner.invoke(cli, list(args))


def test_cli_list_show_compare_promote(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    for lr, ppl in ((0.1, 20.0), (0.3, 15.0)):
        _publish_manifest(out, _manifest(lr, ppl))
    monkeypatch.chdir(tmp_path)

    listed = _cli("builds", "list", "runs")  # the form: an output folder
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        "  demo@v1  2026-01-01T00:00:00+00:00  perplexity=20, eval_tokens=100",
        "* demo@v2  2026-01-01T00:00:00+00:00  perplexity=15, eval_tokens=100",
    ]
    assert _cli("builds", "list", "demo", "--output", "runs").output == listed.output

    shown = _cli("builds", "show", "v1", "--output", "runs")
    assert shown.exit_code == 0 and shown.output.startswith("# runs/demo/v1\n"), shown.output
    assert json.loads(shown.output[shown.output.index("{") :])["version"] == "v1"

    compared = _cli("builds", "compare", "v1", "v2", "--output", "runs")
    assert compared.exit_code == 0, compared.output
    assert "  train.options.learning_rate: 0.1 -> 0.3" in compared.output
    assert "  perplexity.perplexity: 20.0 -> 15.0  (-5, -25.0%)" in compared.output
    assert "versions: same" in compared.output

    promoted = _cli("builds", "promote", "demo@v1", "--output", "runs")
    assert promoted.exit_code == 0 and promoted.output.strip() == "demo@current -> v1"
    assert _cli("builds", "list", "runs").output.splitlines()[0].startswith("* demo@v1")
    again = _cli("builds", "promote", "v2", "--output", "runs")
    assert again.output.strip() == "demo@current -> v2 (was v1)"

    missing = _cli("builds", "compare", "v1", "v7", "--output", "runs")
    assert missing.exit_code == 2 and "no build 'v7' of 'demo' (have v1, v2)" in missing.output


def test_cli_clean_removes_only_abandoned_staging(tmp_path):
    store = BuildStore(tmp_path, "demo")
    _publish_manifest(tmp_path, _manifest(0.1, 20.0))
    abandoned = store.create_staging()  # a run killed before it wrote run.json
    live = store.create_staging()
    from qslm.builds import lock_staging

    held = lock_staging(live)  # a run at work holds its lock
    try:
        listed = _cli("builds", "list", "--output", str(tmp_path))
        assert f"demo/{live.name}  (running)" in listed.output
        cleaned = _cli("builds", "clean", "--output", str(tmp_path))
        assert cleaned.exit_code == 0, cleaned.output
        assert f"removed demo/{abandoned.name}" in cleaned.output
        assert f"kept demo/{live.name} (a run is using it)" in cleaned.output
        assert not abandoned.exists() and live.exists() and store.versions() == [1]
    finally:
        held.close()


def test_only_one_process_can_claim_an_interrupted_run(tmp_path):
    from qslm.builds import claim_interrupted, lock_staging, write_run_state

    raw = {
        "pipeline": {"name": "demo"},
        "train": {"options": {"max_steps": 5, "token": "hunter2-secret"}},
    }
    store = BuildStore(tmp_path, "demo")
    staging = store.create_staging()
    write_run_state(staging, name="demo", pipeline=tmp_path / "p.toml", raw=raw)
    assert "hunter2" not in json.dumps(json.loads((staging / "run.json").read_text())["config"])

    owner = lock_staging(staging)  # the run is alive: nothing to take over
    with pytest.raises(ConfigError, match=r"nothing to resume.*1 run\(s\) still in progress"):
        claim_interrupted(store, raw)
    owner.close()  # the run died

    first = claim_interrupted(store, raw)
    assert first.path == staging
    with pytest.raises(ConfigError, match="nothing to resume"):  # a second resume is refused
        claim_interrupted(store, raw)
    first.lock.close()

    other = {**raw, "train": {"options": {"max_steps": 9, "token": "hunter2-secret"}}}
    with pytest.raises(ConfigError, match=r"train.options.max_steps: 5 -> 9"):
        claim_interrupted(store, other)
