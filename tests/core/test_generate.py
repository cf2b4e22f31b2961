"""Loading builds (full and LoRA adapter) and generating from them: the library calls, and the
``qslm generate`` and ``qslm chat`` commands."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from qslm.cli import cli
from qslm.errors import ConfigError, QslmError

pytest.importorskip("torch")

from qslm.inference.generation import GenerationParams, generate
from qslm.inference.load import load_build


@pytest.fixture(scope="module")
def loaded(tiny_model_build):
    return load_build(tiny_model_build)


def test_greedy_generation_is_the_models_argmax_continuation(loaded):
    import torch

    params = GenerationParams(max_new_tokens=6, temperature=0)
    result = generate(loaded.model, loaded.tokenizer, "the cat", params)
    assert result.tokens == 6 and result.prompt_tokens == 3  # <|endoftext|> the cat
    # The same tokens one forward pass at a time:
    ids = loaded.tokenizer("the cat", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        for _ in range(6):
            ids = torch.cat([ids, loaded.model(ids).logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert result.text == loaded.tokenizer.decode(ids[0, 3:], skip_special_tokens=True)


def test_seeded_sampling_reproduces_and_differs_between_seeds(loaded):
    def run(seed, **kw):
        params = GenerationParams(max_new_tokens=12, temperature=1.0, seed=seed, **kw)
        return generate(loaded.model, loaded.tokenizer, "a dog", params).text

    assert run(1) == run(1)
    assert len({run(1), run(2), run(3)}) == 3
    greedy = generate(
        loaded.model, loaded.tokenizer, "a dog", GenerationParams(12, temperature=0)
    ).text
    # Keeping only the likeliest token leaves nothing to draw: sampling equals greedy.
    assert run(5, top_k=1) == greedy
    assert run(5, top_p=1e-6) == greedy


def test_out_of_range_parameters_are_config_errors():
    for bad, word in [
        (GenerationParams(max_new_tokens=0), "--max-new-tokens"),
        (GenerationParams(temperature=-1), "--temperature"),
        (GenerationParams(top_k=-1), "--top-k"),
        (GenerationParams(top_p=0), "--top-p"),
        (GenerationParams(seed=-5), "--seed"),
    ]:
        with pytest.raises(ConfigError, match=word):
            bad.check()


def test_qslm_generate_streams_the_continuation(loaded, tiny_model_build):
    root = tiny_model_build.parent.parent
    args = ["generate", "tiny@v1", "the cat", "--max-new-tokens", "6", "--temperature", "0"]
    result = CliRunner().invoke(cli, [*args, "--output", str(root)])
    assert result.exit_code == 0, result.output
    expected = generate(loaded.model, loaded.tokenizer, "the cat", GenerationParams(6, 0.0)).text
    assert result.stdout.startswith("the cat" + expected)
    assert "[6 tokens]" in result.stderr


def test_qslm_generate_user_errors_exit_2_without_traceback(tiny_model_build, tmp_path):
    bad = CliRunner().invoke(cli, ["generate", str(tiny_model_build), "x", "--top-p", "2"])
    assert bad.exit_code == 2 and "--top-p must be in (0, 1]" in bad.output
    missing = CliRunner().invoke(cli, ["generate", "tiny@v9", "x", "--output", str(tmp_path)])
    assert missing.exit_code == 2 and "no builds of 'tiny'" in missing.output
    assert "Traceback" not in bad.output + missing.output


def test_chat_keeps_the_conversation_and_ends_on_exit_or_eof(tiny_model_build):
    args = ["chat", str(tiny_model_build), "--max-new-tokens", "4", "--temperature", "0"]
    result = CliRunner().invoke(cli, args, input="the cat\n\nsees a dog\n/exit\nnever read\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("bot> ") == 2 and result.stdout.count("you> ") == 4
    assert "a plain User/Assistant" in result.stderr
    eof = CliRunner().invoke(cli, args, input="the cat\n")
    assert eof.exit_code == 0 and eof.stdout.count("bot> ") == 1


def test_chat_prompt_uses_the_tokenizers_template_when_it_has_one(loaded):
    from qslm.inference.chat import chat_prompt

    turns = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "and?"},
    ]
    plain, stops = chat_prompt(loaded.tokenizer, turns)
    assert plain == "User: hi\nAssistant: hello\nUser: and?\nAssistant:" and stops == ["\nUser:"]
    tok = loaded.tokenizer
    tok.chat_template = (
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    try:
        text, stops = chat_prompt(tok, turns)
    finally:
        tok.chat_template = None
    assert text == "<user>hi<assistant>hello<user>and?<assistant>" and stops is None


def test_chat_drops_old_turns_to_fit_the_context(tiny_model_build):
    long_line = " ".join(["the old tree"] * 25) + "\n"  # ~75 tokens a turn, context 256
    args = ["chat", str(tiny_model_build), "--max-new-tokens", "20", "--temperature", "0"]
    result = CliRunner().invoke(cli, args, input=long_line * 4)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("bot> ") == 4 and "too long" not in result.output
    assert "(dropped the 2 oldest turns to fit)" in result.stderr
    huge = CliRunner().invoke(cli, args, input=" ".join(["the old tree"] * 200) + "\n")
    assert huge.exit_code == 0 and "that message is too long" in huge.stderr


def test_adapter_build_loads_base_plus_lora(tmp_path, tiny_model_build):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_dir = tiny_model_build / "model"
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:  # zero at init: make the adapter change the model
                p.normal_(0, 0.5)
    build = tmp_path / "lora" / "v1"
    peft_model.save_pretrained(build / "adapter")
    shutil.copy(base_dir / "tokenizer.json", build / "adapter")
    shutil.copy(base_dir / "tokenizer_config.json", build / "adapter")
    artifact = {"model_dir": "adapter", "kind": "adapter", "base_model": str(base_dir)}
    (build / "manifest.json").write_text(json.dumps({"name": "lora", "artifact": artifact}))

    loaded = load_build(build)
    ids = loaded.tokenizer("the cat sees", return_tensors="pt")["input_ids"]
    plain = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    peft_model.eval()
    with torch.no_grad():
        got = loaded.model(ids).logits
        assert torch.allclose(got, peft_model(ids).logits, atol=1e-5)
        assert not torch.allclose(got, plain(ids).logits, atol=1e-3)
    text = generate(loaded.model, loaded.tokenizer, "the cat", GenerationParams(4, 0.0))
    assert text.tokens == 4


def test_broken_manifests_give_clear_errors(tmp_path, tiny_model_build):
    def build_with(artifact):
        build = tmp_path / f"b{len(list(tmp_path.iterdir()))}"
        build.mkdir()
        (build / "manifest.json").write_text(json.dumps({"artifact": artifact}))
        return build

    with pytest.raises(ConfigError, match=r"artifact\.model_dir"):
        load_build(build_with({}))
    with pytest.raises(ConfigError, match=r"artifact\.kind is 'gguf'"):
        load_build(build_with({"model_dir": "m", "kind": "gguf"}))
    with pytest.raises(ConfigError, match=r"needs artifact\.base_model"):
        load_build(build_with({"model_dir": "m", "kind": "adapter"}))
    with pytest.raises(QslmError, match="folder 'm' is missing"):
        load_build(build_with({"model_dir": "m", "kind": "full"}))
    adapter = build_with({"model_dir": "m", "kind": "adapter", "base_model": str(tmp_path / "x")})
    (adapter / "m").mkdir()
    shutil.copy(tiny_model_build / "model" / "tokenizer.json", adapter / "m")
    with pytest.raises(QslmError, match="cannot load the base model of the adapter"):
        load_build(adapter)
