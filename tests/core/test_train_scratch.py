"""The from-scratch trainer: options checks, a real (tiny) training run, and a build that plain
transformers loads without qslm."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from qslm.components import Dataset
from qslm.errors import ConfigError, QslmError
from qslm.train.scratch import ScratchTrainer


def test_training_lowers_the_loss_and_logs_every_step(tiny_build):
    build, artifact, lines = tiny_build
    events = [json.loads(line) for line in (build / "train_log.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["event"] == "train"]
    assert [e["step"] for e in steps] == [1, 5, 10, 15, 20, 25, 30, 35, 40]
    assert all({"loss", "learning_rate"} <= e.keys() for e in steps)
    assert steps[-1]["loss"] < 0.6 * steps[0]["loss"]
    # train_loss: the mean of the last logging window's step losses, in float64 (the log's
    # own mean sums them in float32)
    assert artifact.metrics["train_loss"] == pytest.approx(steps[-1]["loss"], rel=1e-6)
    assert any("step 40/40" in line for line in lines)


def test_artifact_describes_the_build(tiny_build):
    build, artifact, _ = tiny_build
    assert (artifact.model_dir, artifact.tokenizer_dir, artifact.kind) == ("model", "model", "full")
    assert artifact.reference["type"] == "init" and artifact.reference["seed"] == 0
    assert artifact.metrics["train_steps"] == 40
    assert not (build / "checkpoints").exists()  # removed once the model is saved


def test_build_holds_safetensors_only_and_no_qslm_attention(tiny_build):
    build, _, _ = tiny_build
    files = {p.name for p in (build / "model").iterdir()}
    assert "model.safetensors" in files and "tokenizer.json" in files
    assert not [p for p in build.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    assert "qslm" not in (build / "model" / "config.json").read_text()


def test_plain_transformers_loads_and_generates_without_qslm(tiny_build):
    build, _, _ = tiny_build
    script = textwrap.dedent(f"""
        import sys
        from transformers import AutoModelForCausalLM, AutoTokenizer
        path = {str(build / "model")!r}
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
        ids = tok("the cat", return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
        assert out.shape[1] > ids["input_ids"].shape[1]
        print(tok.decode(out[0], skip_special_tokens=True))
        assert "qslm" not in sys.modules, "loading the build imported qslm"
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("the cat")


def test_training_is_deterministic_from_the_seed(
    tiny_build, tmp_path, tiny_options, synthetic_data, make_ctx
):
    from safetensors.torch import load_file

    from qslm.attention.exact import ExactAttention

    build, artifact, _ = tiny_build
    options = ScratchTrainer.Options(**tiny_options)  # same run, without checkpoints
    again = ScratchTrainer(options).train(make_ctx(tmp_path), synthetic_data, ExactAttention())
    assert again.reference == artifact.reference
    a = load_file(build / "model" / "model.safetensors")
    b = load_file(tmp_path / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_keep_checkpoint_leaves_a_resumable_checkpoint(
    tmp_path, tiny_options, synthetic_data, make_ctx
):
    from qslm.attention.exact import ExactAttention

    tiny_options.update(max_steps=4, checkpoint_every=2, keep_checkpoint=True)
    options = ScratchTrainer.Options(**tiny_options)
    ScratchTrainer(options).train(make_ctx(tmp_path), synthetic_data, ExactAttention())
    kept = [p.name for p in (tmp_path / "checkpoints").iterdir()]
    assert kept == ["checkpoint-4"]
    assert (tmp_path / "checkpoints" / "checkpoint-4" / "optimizer.pt").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"hidden_size": 100, "heads": 3},
            "train.options.heads: hidden_size 100 is not divisible by heads 3",
        ),
        ({"hidden_size": 36, "heads": 4}, "train.options.heads: head size"),
        ({"heads": 4, "kv_heads": 3}, "train.options.kv_heads: heads 4 is not divisible"),
    ],
)
def test_plan_names_the_bad_option(options, message):
    with pytest.raises(ConfigError, match=message):
        ScratchTrainer(ScratchTrainer.Options(**options)).plan()


def test_plan_describes_the_model():
    lines = ScratchTrainer(ScratchTrainer.Options(layers=2, max_steps=7)).plan()
    assert "2 layers" in lines[0] and "7 steps" in lines[1]


@pytest.mark.parametrize("train", [[], [{"text": "  "}], [{"title": "no text"}]])
def test_empty_training_data_is_a_clear_error(tmp_path, train, tiny_options, make_ctx):
    from qslm.attention.exact import ExactAttention

    data = Dataset(train=train, validation=[], sha256="x")
    with pytest.raises(QslmError, match="training data has no text"):
        trainer = ScratchTrainer(ScratchTrainer.Options(**tiny_options))
        trainer.train(make_ctx(tmp_path), data, ExactAttention())


def test_too_little_training_text_is_a_clear_error(tmp_path, tiny_options, make_ctx):
    from qslm.attention.exact import ExactAttention

    data = Dataset(train=[{"text": "a b"}], validation=[], sha256="x")
    with pytest.raises(QslmError, match="context_length"):
        trainer = ScratchTrainer(ScratchTrainer.Options(**tiny_options))
        trainer.train(make_ctx(tmp_path), data, ExactAttention())


def test_importing_the_module_does_not_import_torch():
    code = (
        "import sys, qslm.train.scratch, qslm.evaluate.perplexity; "
        "heavy = {'torch', 'transformers', 'tokenizers'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
