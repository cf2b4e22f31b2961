"""Issue 15, item 5 for the ``lora`` trainer: ``qslm validate`` estimates a fine-tune's memory
from the base's config and safetensors headers and refuses one that cannot fit, naming the
options; the counts are the ones transformers and peft build."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import save_tiny_build
from test_bad_input import CORPUS, assert_clean_error, invoke

from qslm.train.base_model import BaseModel
from qslm.train.lora import LoraTrainer
from qslm.train.lora_estimate import lora_estimate

PIPELINE = """
[pipeline]
name = "demo"

[data]
source = "text"
[data.options]
paths = ["corpus.txt"]

[train]
trainer = "lora"
[train.options]
base_model = "{base}"
max_steps = 2
batch_size = 2
max_length = 32
"""


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    return save_tiny_build(tmp_path_factory.mktemp("builds"))


@pytest.fixture
def project(tmp_path: Path, tiny_base: Path, clean_env, monkeypatch) -> Path:
    (tmp_path / "corpus.txt").write_text(CORPUS + "\n")
    (tmp_path / "pipeline.toml").write_text(PIPELINE.format(base=tiny_base))
    monkeypatch.setenv("QSLM_FORCE", "0")  # restored after --force sets it
    return tmp_path


def test_a_small_lora_fine_tune_validates_and_shows_its_estimate(project):
    result = invoke("validate", str(project / "pipeline.toml"))
    assert result.exit_code == 0, result.output
    assert "memory: about" in result.output and "trainable LoRA parameters" in result.output


@pytest.mark.parametrize(
    "sets",
    [
        ["train.options.max_length=1000000", "train.options.batch_size=64"],
        ["train.options.batch_size=100000000"],
    ],
)
def test_a_lora_fine_tune_that_cannot_fit_is_refused_naming_the_options(project, sets):
    pipeline = str(project / "pipeline.toml")
    args = [a for s in sets for a in ("--set", s)]
    result = invoke("validate", pipeline, *args)
    assert_clean_error(
        result, 2, "train.options (base_model", "batch_size", "max_length", "of memory"
    )
    assert invoke("validate", pipeline, *args, "--force").exit_code == 0


def test_the_guard_compares_against_the_memory_available(project, monkeypatch):
    monkeypatch.setattr("qslm.resources.available_memory", lambda: 2**20)
    result = invoke("validate", str(project / "pipeline.toml"))
    assert_clean_error(result, 2, "train.options (base_model", "1.0 MiB available")


@pytest.mark.parametrize("targets", ["all-linear", ["q_proj", "v_proj"], ["up_proj"]])
def test_the_estimate_counts_what_transformers_and_peft_build(tiny_base, targets):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    trainer = LoraTrainer(
        LoraTrainer.Options(base_model=str(tiny_base), r=4, target_modules=targets)
    )
    estimate = trainer.estimate()
    model = AutoModelForCausalLM.from_pretrained(str(tiny_base / "model"))
    params = sum(p.numel() for p in model.parameters())
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=targets))
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert f"{params:,} parameters;" in estimate.options
    assert f"{trainable:,} trainable" in estimate.options


def test_nf4_counts_the_linear_layers_at_four_bits_plus_scales(tiny_base):
    def memory(**options) -> int:
        return LoraTrainer(LoraTrainer.Options(base_model=str(tiny_base), **options)).estimate()

    full = memory().memory
    nf4 = memory(quantization="nf4", double_quant=False).memory
    # the tiny Llama's linear layers: 2 layers x (q, o: 32x32; k, v: 32x16; gate, up, down)
    hidden, inter, kv = 32, 64, 16
    linear = 2 * (2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inter)
    assert full - nf4 == pytest.approx(linear * (4 - 0.5 - 4 / 64), abs=1)


def test_a_hub_base_not_downloaded_yet_has_no_estimate():
    pending = BaseModel("owner/model", None, "hub", repo="owner/model", commit="0" * 40)
    options = LoraTrainer.Options(base_model="owner/model")
    assert lora_estimate(options, pending, "all-linear", "train.options") is None


@pytest.mark.parametrize(
    "content",
    [
        b"\xff" * 100,  # a header length of 2**64 - 1: no MemoryError
        b"\x02\x00\x00\x00\x00\x00\x00\x00[]",
        b'\x1c\x00\x00\x00\x00\x00\x00\x00{"w.weight": {"shape": "a"}}',
        b"\x01\x00",
    ],
)
def test_a_damaged_safetensors_file_is_named(project, tiny_base, tmp_path, content):
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_base / "model", damaged)
    (damaged / "model.safetensors").write_bytes(content)
    result = invoke(
        "validate", str(project / "pipeline.toml"), "--set", f"train.options.base_model={damaged}"
    )
    assert_clean_error(result, 2, "model.safetensors is not a readable safetensors file")
