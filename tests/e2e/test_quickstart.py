"""The quickstart as a new user runs it: two runs give v1 and v2, the model is good enough,
and plain transformers loads and generates with the build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart" / "pipeline.toml"


def run_qslm(qslm_cmd, *args, cwd: Path, timeout: int = 600):
    return subprocess.run(
        [*qslm_cmd, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


@pytest.fixture(scope="module")
def quickstart_builds(tmp_path_factory):
    """Run the quickstart in full once, then a short second run: v1 and v2."""
    work = tmp_path_factory.mktemp("quickstart")
    qslm_cmd = [sys.executable, "-c", "from qslm.cli import main; main()"]
    start = time.perf_counter()
    first = run_qslm(qslm_cmd, "run", str(QUICKSTART), cwd=work)
    elapsed = time.perf_counter() - start
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_qslm(
        qslm_cmd, "run", str(QUICKSTART), "--set", "train.options.max_steps=3", cwd=work
    )
    assert second.returncode == 0, second.stderr[-3000:]
    return work, first, second, elapsed


@pytest.mark.slow
def test_two_runs_give_v1_and_v2(quickstart_builds):
    work, first, second, elapsed = quickstart_builds
    v1 = Path(first.stdout.strip().splitlines()[-1])
    v2 = Path(second.stdout.strip().splitlines()[-1])
    assert v1 == work / "builds" / "quickstart" / "v1"
    assert v2 == work / "builds" / "quickstart" / "v2"
    print(f"\nquickstart wall time: {elapsed:.1f} s")
    for build in (v1, v2):
        manifest = json.loads((build / "manifest.json").read_text())
        assert manifest["version"] == build.name
        assert manifest["seed"] == 1234
        assert len(manifest["data"]["sha256"]) == 64
        assert {"data", "train", "evaluate"} <= set(manifest["timings"])
        assert manifest["versions"]["torch"].startswith("2.")
        assert "transformers" in manifest["versions"]
        assert manifest["components"]["train.trainer"]["name"] == "scratch"
        assert (build / "metrics.json").is_file()
        assert (build / "train_log.jsonl").stat().st_size > 0
        assert (build / "model" / "model.safetensors").is_file()
        assert not list(build.rglob("*.bin")) and not list(build.rglob("*.pt"))
    assert not list((work / "builds" / "quickstart").glob(".staging-*"))


@pytest.mark.slow
def test_quickstart_model_is_much_better_than_untrained(quickstart_builds):
    _, first, _, elapsed = quickstart_builds
    v1 = Path(first.stdout.strip().splitlines()[-1])
    metrics = json.loads((v1 / "metrics.json").read_text())["perplexity"]
    print(
        f"\nperplexity {metrics['perplexity']:.1f}, untrained "
        f"{metrics['perplexity_untrained']:.1f}, ratio {metrics['perplexity_ratio']:.1f}, "
        f"wall {elapsed:.1f} s"
    )
    assert metrics["perplexity_untrained"] / metrics["perplexity"] >= 5


@pytest.mark.slow
def test_build_loads_and_generates_with_plain_transformers(quickstart_builds):
    _, first, _, _ = quickstart_builds
    model_dir = Path(first.stdout.strip().splitlines()[-1]) / "model"
    code = (
        "import sys\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"model = AutoModelForCausalLM.from_pretrained({str(model_dir)!r})\n"
        f"tok = AutoTokenizer.from_pretrained({str(model_dir)!r})\n"
        "ids = tok('The annealing schedule', return_tensors='pt')\n"
        "out = model.generate(**ids, max_new_tokens=20, do_sample=False)\n"
        "text = tok.decode(out[0][ids['input_ids'].shape[1]:], skip_special_tokens=True)\n"
        "assert out.shape[1] > ids['input_ids'].shape[1]\n"
        "assert not [m for m in sys.modules if m == 'qslm' or m.startswith('qslm.')]\n"
        "print(repr(text))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.stdout.strip()) > 2
