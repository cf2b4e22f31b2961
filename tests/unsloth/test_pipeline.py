"""``trainer = "unsloth"`` in a real pipeline on the CPU (Unsloth's CPU fallback): the build
has the ``lora`` trainer's layout, ``perplexity`` evaluates it, ``qslm builds`` shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import qslm


@pytest.fixture(scope="module")
def build(project) -> Path:
    done = qslm(project, "run", "pipeline.toml")
    assert done.returncode == 0, done.stderr[-4000:]
    path = Path(done.stdout.strip().splitlines()[-1])
    assert path == project / "builds" / "tiny-unsloth" / "v1"
    return path


def test_build_holds_a_peft_adapter_and_the_tokenizer(build):
    adapter = build / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8
    assert (adapter / "adapter_model.safetensors").stat().st_size > 0
    assert (adapter / "tokenizer.json").is_file()
    assert not (build / "checkpoints").exists()

    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["artifact"]["kind"] == "adapter"
    assert manifest["artifact"]["base_model"] == str(build.parents[2] / "base")
    assert manifest["components"]["train.trainer"]["name"] == "unsloth"
    unsloth = manifest["unsloth"]
    assert unsloth["cpu_fallback"] is True and unsloth["device"] == "cpu"
    # qslm run imported Unsloth before anything imported transformers, trl or peft
    assert unsloth["imported_before_unsloth"] == []
    assert unsloth["load_in_4bit"] is False and unsloth["dtype"] == "float32"


def test_training_lowers_the_loss_and_perplexity_evaluates_the_adapter(build):
    metrics = json.loads((build / "metrics.json").read_text())
    train = metrics["train"]
    assert train["train_steps"] == 12
    assert 0 < train["trainable_parameters"] < train["parameters"]
    assert train["eval_loss"] < train["eval_loss_base"]
    ppl = metrics["perplexity"]
    # the adapter on its base (loaded by plain peft in the evaluator) beats the base alone
    assert ppl["perplexity"] < ppl["perplexity_untrained"]
    assert ppl["perplexity_ratio"] > 1.05


def test_builds_show_works_on_the_build(build, project):
    shown = qslm(project, "builds", "show", "v1")
    assert shown.returncode == 0, shown.stderr
    assert '"trainer": "unsloth"' in shown.stdout
    assert '"kind": "adapter"' in shown.stdout
    listed = qslm(project, "builds", "list")
    assert listed.returncode == 0 and "v1" in listed.stdout, listed.stderr


def test_load_in_4bit_trains_on_a_4bit_base_and_says_so(project):
    done = qslm(
        project,
        "run",
        "pipeline.toml",
        "--set",
        "train.options.load_in_4bit=true",
        "--set",
        "train.options.max_steps=4",
    )
    assert done.returncode == 0, done.stderr[-4000:]
    build = Path(done.stdout.strip().splitlines()[-1])
    manifest = json.loads((build / "manifest.json").read_text())
    # Unsloth checks bitsandbytes' CPU kernels with a real NF4 forward and backward and falls
    # back to 16-bit weights when they fail; the manifest must say which one trained.
    loaded = manifest["unsloth"]["load_in_4bit"]
    if loaded:
        assert manifest["artifact"]["reference"]["quantization"] == "nf4"
        assert manifest["lora"]["quantization"] == "nf4"
    else:
        assert "loaded 16-bit weights" in done.stderr
    assert json.loads((build / "metrics.json").read_text())["train"]["train_steps"] == 4
