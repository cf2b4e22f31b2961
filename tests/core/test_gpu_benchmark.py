"""``benchmarks/gpu.py`` in its CPU mode (tiny configs of the same architectures), so the GPU
check cannot rot between device runs: every variant trains, qslm's ``lora`` learns exactly as
plain transformers + peft does from the same seed, ``qslm serve`` answers at two
concurrencies, and without CUDA the GPU mode refuses in one line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("bitsandbytes")
pytest.importorskip("fastapi")
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-cpu")
    cmd = [sys.executable, str(SCRIPT), "--cpu",
           "--models", "qwen2.5-0.5b", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "gpu.json").read_text()), (out / "gpu.md").read_text()


def test_cpu_mode_trains_every_variant_and_qslm_learns_like_the_reference(cpu_run):
    report, _ = cpu_run
    s = report["settings"]
    variants = report["models"]["qwen2.5-0.5b"]["variants"]
    for name in ("reference", "qslm-lora-bf16", "qslm-lora-nf4"):
        r = variants[name]
        assert r["steps"] == s["steps"] and r["tokens_per_step"] == s["batch"] * s["seq_len"]
        assert r["tokens_per_s"] > 0 and math.isfinite(r["final_loss"]), (name, r)
        assert r["speed_vs_reference"] > 0
    ref, lora = variants["reference"], variants["qslm-lora-bf16"]
    # same seed, same records, float32 on the CPU: the same adapter learns the same way
    assert lora["first_loss"] == pytest.approx(ref["first_loss"], abs=1e-4)
    assert lora["final_loss"] == pytest.approx(ref["final_loss"], abs=1e-4)
    assert variants["qslm-lora-nf4"]["final_loss"] == pytest.approx(ref["final_loss"], abs=0.05)
    assert "CUDA" in variants["qslm-unsloth-bf16"]["skipped"]


def test_cpu_mode_serves_the_merged_build_and_writes_the_table(cpu_run):
    report, table = cpu_run
    runs = report["serve"]["runs"]
    assert [r["concurrency"] for r in runs] == report["settings"]["serve_concurrency"]
    assert all(r["tokens"] > 0 and r["tokens_per_s"] > 0 for r in runs)
    assert "| qwen2.5-0.5b | qslm-lora-nf4 |" in table and "concurrency 8:" in table
    assert report["environment"]["versions"]["qslm-core"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_gpu_mode_without_cuda_refuses_in_one_line():
    proc = subprocess.run([sys.executable, str(SCRIPT)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "no CUDA device" in proc.stderr
    assert "--cpu" in proc.stderr
