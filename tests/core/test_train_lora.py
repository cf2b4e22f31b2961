"""The ``lora`` trainer: a pipeline run on a tiny local Llama that plain peft loads, QLoRA NF4 on
the CPU, merged models equal to adapter-on-base, checkpoints and resume, and every bad input
refused before training with a clear message."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_context, make_synthetic_data, synthetic_texts

from qslm.cli import cli

torch = pytest.importorskip("torch")

# Widths are multiples of 64 so that bitsandbytes' CPU kernels take their fast path too.
TINY_LLAMA = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
)
# One thread: these models are too small to gain from two, and on a shared machine two
# OpenMP threads can be several times slower than one.
FAST = dict(batch_size=8, learning_rate=1e-2, logging_every=2, threads=1, dropout=0.0)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    """A random tiny Llama and a BPE tokenizer trained on the synthetic sentences, saved the way
    a downloaded model is (config.json, model.safetensors, tokenizer files)."""
    import transformers
    from transformers import AutoModelForCausalLM, LlamaConfig

    from qslm.train.scratch import train_tokenizer

    path = tmp_path_factory.mktemp("base")
    tokenizer = train_tokenizer(synthetic_texts(300, 0), 300, 2, 64)
    eos = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer), bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
        **TINY_LLAMA,
    )  # fmt: skip
    transformers.set_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def pipeline_toml(base: Path, **options) -> str:
    opts = {"base_model": str(base), **FAST, "max_steps": 24, **options}
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in opts.items())
    return (
        textwrap.dedent("""
        [pipeline]
        name = "lora"
        seed = 5

        [data]
        source = "text"
        [data.options]
        paths = ["corpus.txt"]
        validation_fraction = 0.15

        [attention]
        backend = "exact"

        [train]
        trainer = "lora"
        [train.options]
        """)
        + lines
        + "\n\n[evaluate.perplexity]\n"
    )


def write_pipeline(tmp_path: Path, base: Path, **options) -> Path:
    (tmp_path / "corpus.txt").write_text("\n\n".join(synthetic_texts(240, 0)))
    path = tmp_path / "pipeline.toml"
    path.write_text(pipeline_toml(base, **options))
    return path


@pytest.fixture(scope="module")
def lora_build(tiny_base, tmp_path_factory) -> Path:
    """One pipeline run through the CLI: LoRA, validation loss every 8 steps, merged model."""
    tmp = tmp_path_factory.mktemp("run")
    pipeline = write_pipeline(tmp, tiny_base, eval_every=8, merge=True)
    result = CliRunner().invoke(cli, ["run", str(pipeline), "--output", str(tmp / "out")])
    assert result.exit_code == 0, result.output
    return Path(result.output.strip().splitlines()[-1])


def test_pipeline_builds_an_adapter_described_by_the_manifest(lora_build, tiny_base):
    adapter = lora_build / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "tokenizer.json").is_file()
    assert not [p for p in lora_build.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    manifest = json.loads((lora_build / "manifest.json").read_text())
    assert manifest["artifact"] == {
        "model_dir": "adapter",
        "tokenizer_dir": "adapter",
        "kind": "adapter",
        "base_model": str(tiny_base),
        "reference": {"type": "base"},
    }
    assert manifest["lora"]["merged_dir"] == "merged"
    train = manifest["metrics"]["train"]
    assert train["train_steps"] == 24 and train["train_tokens"] > 0
    assert 0 < train["trainable_parameters"] < train["parameters"]
    assert not (lora_build / "checkpoints").exists()


def test_training_lowers_train_and_validation_loss(lora_build):
    events = [json.loads(x) for x in (lora_build / "train_log.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in events if e["event"] == "train"]
    evals = [(e["step"], e["eval_loss"]) for e in events if e["event"] == "eval"]
    assert [s for s, _ in evals] == [0, 8, 16, 24]
    assert evals[-1][1] < evals[0][1] - 0.1
    assert losses[-1] < losses[0] - 0.1
    metrics = json.loads((lora_build / "metrics.json").read_text())
    assert metrics["train"]["eval_loss"] == pytest.approx(evals[-1][1])
    assert metrics["train"]["eval_loss_base"] == pytest.approx(evals[0][1])
    # perplexity: the adapter on its base against the base alone
    ppl = metrics["perplexity"]
    assert ppl["perplexity"] < ppl["perplexity_untrained"]


def test_plain_peft_loads_the_adapter_and_it_changes_the_outputs(lora_build, tiny_base):
    script = textwrap.dedent(f"""
        import sys, torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tok = AutoTokenizer.from_pretrained({str(lora_build / "adapter")!r})
        ids = tok("the cat sees", return_tensors="pt")["input_ids"]
        base = AutoModelForCausalLM.from_pretrained({str(tiny_base)!r}).eval()
        before = base(ids).logits
        model = PeftModel.from_pretrained(base, {str(lora_build / "adapter")!r}).eval()
        after = model(ids).logits
        assert (after - before).abs().max() > 1e-2, "the adapter changes nothing"
        assert "qslm" not in sys.modules, "loading the adapter imported qslm"
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_merged_model_computes_what_adapter_on_base_computes(lora_build, tiny_base):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[0, 5, 17, 42, 99, 3, 64, 120]])
    merged = AutoModelForCausalLM.from_pretrained(lora_build / "merged").eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_base)
    adapted = PeftModel.from_pretrained(base, lora_build / "adapter").eval()
    with torch.no_grad():
        a, b = merged(ids).logits, adapted(ids).logits
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    plain = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    with torch.no_grad():
        assert (plain(ids).logits - a).abs().max() > 1e-2


def test_qlora_nf4_trains_on_the_cpu_and_merges_the_dequantised_base(tiny_base, tmp_path):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from qslm.attention.exact import ExactAttention
    from qslm.evaluate.perplexity import Perplexity, load_trained
    from qslm.train.lora import LoraTrainer
    from qslm.train.qlora import load_causal_lm

    options = LoraTrainer.Options(
        base_model=str(tiny_base), quantization="nf4", merge=True, max_steps=10, **FAST
    )
    ctx = make_context(tmp_path)
    data = make_synthetic_data()
    artifact = LoraTrainer(options).train(ctx, data, ExactAttention())
    assert artifact.reference == {
        "type": "base", "quantization": "nf4", "compute_dtype": "float32", "double_quant": True,
    }  # fmt: skip
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert artifact.metrics["eval_loss"] < artifact.metrics["eval_loss_base"]

    nf4 = load_causal_lm(str(tiny_base), quantization="nf4")
    assert isinstance(nf4.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    # train mode (no dropout here): bitsandbytes' generic 4-bit kernel, not the packed
    # bfloat16 inference kernel it switches to in eval mode on AVX512-BF16 CPUs
    adapted = PeftModel.from_pretrained(nf4, tmp_path / "adapter").train()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    ids = torch.tensor([[0, 5, 17, 42, 99, 3, 64, 120]])
    with torch.no_grad():
        a, b = merged(ids).logits, adapted(ids).logits
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # ... and not what the adapter on the unquantised base computes
    full = PeftModel.from_pretrained(load_causal_lm(str(tiny_base)), tmp_path / "adapter").eval()
    with torch.no_grad():
        assert (full(ids).logits - b).abs().max() > 10 * (a - b).abs().max()

    # perplexity measures the adapter on the 4-bit base it was trained on
    trained = load_trained(ctx, artifact, None)
    q_proj = trained.base_model.model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj.base_layer, bnb.nn.Linear4bit)
    del trained
    result = Perplexity(Perplexity.Options(max_tokens=400)).evaluate(ctx, artifact, data)
    assert result["perplexity"] < result["perplexity_untrained"]


def test_checkpoint_and_resume_end_where_an_uninterrupted_run_ends(tiny_base, tmp_path):
    from safetensors.torch import load_file

    from qslm.attention.exact import ExactAttention
    from qslm.train.lora import LoraTrainer

    data = make_synthetic_data()
    common = dict(base_model=str(tiny_base), schedule="constant", warmup_ratio=0.0, **FAST)
    straight = make_context(tmp_path / "straight")
    LoraTrainer(LoraTrainer.Options(max_steps=6, **common)).train(straight, data, ExactAttention())

    build = tmp_path / "interrupted"
    first = make_context(build)
    options = LoraTrainer.Options(max_steps=3, checkpoint_every=3, keep_checkpoint=True, **common)
    LoraTrainer(options).train(first, data, ExactAttention())
    assert (build / "checkpoints" / "checkpoint-3" / "adapter_model.safetensors").is_file()
    resumed = make_context(build)
    resumed.resume = True
    assert resumed.resume_checkpoint() == str(build / "checkpoints" / "checkpoint-3")
    artifact = LoraTrainer(LoraTrainer.Options(max_steps=6, **common)).train(
        resumed, data, ExactAttention()
    )
    assert artifact.metrics["train_steps"] == 6
    a = load_file(straight.build_dir / "adapter" / "adapter_model.safetensors")
    b = load_file(build / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


def test_base_can_be_a_qslm_build(tiny_base, tmp_path):
    """A build folder is read through its manifest (artifact.model_dir)."""
    from qslm.train.lora import LoraTrainer

    build = tmp_path / "v1"
    (build / "model").mkdir(parents=True)
    for f in tiny_base.iterdir():
        (build / "model" / f.name).write_bytes(f.read_bytes())
    manifest = {"artifact": {"model_dir": "model", "kind": "full"}}
    (build / "manifest.json").write_text(json.dumps(manifest))
    trainer = LoraTrainer(LoraTrainer.Options(base_model="v1"), base_dir=tmp_path)
    assert trainer.base().source == str((build / "model").resolve())
    assert trainer.base().origin == "build"


# -- bad input: refused before training, one clear message, exit 2, no traceback -------------


def _refused(tmp_path: Path, base: str | Path, env: dict | None = None, **options) -> str:
    pipeline = write_pipeline(tmp_path, base, **options)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(pipeline), "--output", str(out)], env=env)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not list(out.glob("lora/v*")), "a build appeared for a refused run"
    return result.output


def test_missing_base_folder_is_refused(tmp_path, clean_env):
    out = _refused(tmp_path, "./models/nowhere")
    assert "train.options.base_model" in out and "does not exist" in out


def test_hub_name_not_available_offline_is_refused(tmp_path, clean_env):
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub-cache")}
    code = textwrap.dedent(f"""
        from click.testing import CliRunner
        from qslm.cli import cli
        r = CliRunner().invoke(cli, ["validate", {str(write_pipeline(tmp_path, "gpt2"))!r}])
        print(r.exit_code); print(r.output)
    """)  # huggingface_hub reads its environment at import: a fresh process
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**clean_env, **env}
    )
    assert result.stdout.splitlines()[0] == "2", result.stdout + result.stderr
    assert "'gpt2' is not available offline" in result.stdout
    assert "HF_HUB_OFFLINE is set" in result.stdout and "Traceback" not in result.stdout


def test_unknown_target_module_is_refused_with_the_models_modules(tiny_base, tmp_path, clean_env):
    out = _refused(tmp_path, tiny_base, target_modules=["q_proj", "c_attn"])
    assert "train.options.target_modules" in out and "'c_attn'" in out
    assert "q_proj" in out and "down_proj" in out  # what the model does have


@pytest.mark.parametrize(
    ("option", "value"), [("r", 0), ("alpha", -1.0), ("dropout", 1.0), ("quantization", "int3")]
)
def test_out_of_range_lora_options_are_refused(tiny_base, tmp_path, clean_env, option, value):
    out = _refused(tmp_path, tiny_base, **{option: value})
    assert f"train.options.{option}" in out


def test_missing_deepspeed_config_is_refused(tiny_base, tmp_path, clean_env):
    out = _refused(tmp_path, tiny_base, deepspeed="ds.json")
    assert "train.options.deepspeed" in out and "does not exist" in out


def test_nf4_without_bitsandbytes_says_how_to_install_it(
    tiny_base, tmp_path, clean_env, monkeypatch
):
    import qslm.train.qlora

    real = qslm.train.qlora.find_spec
    monkeypatch.setattr(
        qslm.train.qlora, "find_spec", lambda n: None if n == "bitsandbytes" else real(n)
    )
    out = _refused(tmp_path, tiny_base, quantization="nf4")
    assert "pip install 'qslm-core[qlora]'" in out
