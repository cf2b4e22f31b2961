"""examples/thesis-qa as its README runs it, shortened: pretrain with scratch, fine-tune the
build with QLoRA (NF4 on the CPU), evaluate with perplexity and concepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "thesis-qa"
QSLM = [sys.executable, "-c", "from qslm.cli import main; main()"]


def qslm(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*QSLM, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=900,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_pretrain_then_qlora_finetune_and_evaluate(tmp_path):
    pytest.importorskip("bitsandbytes")
    out = tmp_path / "builds"
    pre = qslm(
        "run", str(EXAMPLE / "pretrain.toml"), "--output", str(out),
        "--set", "train.options.epochs=4", cwd=tmp_path,
    )  # fmt: skip
    assert Path(pre.stdout.strip().splitlines()[-1]) == out / "thesis-pretrain" / "v1"

    base = f'train.options.base_model="{out / "thesis-pretrain"}@latest"'
    validate = qslm("validate", str(EXAMPLE / "finetune.toml"), "--set", base, cwd=tmp_path)
    assert "4-bit NF4 base (QLoRA)" in validate.stdout
    assert "10 question(s)" in validate.stdout

    ft = qslm(
        "run", str(EXAMPLE / "finetune.toml"), "--output", str(out), "--set", base,
        "--set", "train.options.max_steps=12", cwd=tmp_path,
    )  # fmt: skip
    build = Path(ft.stdout.strip().splitlines()[-1])
    assert build == out / "thesis-qa" / "v1"
    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["artifact"]["kind"] == "adapter"
    assert manifest["artifact"]["base_model"] == str(out / "thesis-pretrain" / "v1" / "model")
    assert manifest["artifact"]["reference"]["quantization"] == "nf4"
    assert (build / "adapter" / "adapter_model.safetensors").is_file()
    metrics = manifest["metrics"]
    assert metrics["concepts"]["concept_questions"] == 10
    assert metrics["perplexity"]["perplexity"] > 1
    answers = [json.loads(line) for line in (build / "concepts.jsonl").read_text().splitlines()]
    assert len(answers) == 10 and all(a["answer"] for a in answers)
    # the adapter trained on a 4-bit base that an evaluation pass did not disturb
    assert metrics["train"]["eval_loss"] < metrics["train"]["eval_loss_base"]
