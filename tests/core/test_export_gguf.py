"""``qslm export --format gguf`` checked with a runtime qslm did not write: llama-cpp-python
(llama.cpp) loads the GGUF, tokenizes exactly as transformers does, computes the same logits
within the weight type's rounding, and its greedy continuation matches transformers'.

Runs in the ``export`` nox session (llama-cpp-python is built from source there); the converter
is fetched the way a user's first export fetches it, unless QSLM_LLAMA_CPP names one.

Tolerance: the GGUF holds f16 (or q8_0) weights where transformers computes in float32, so
logits differ by a small delta (measured here: bounded by LOGIT_TOL). Greedy decoding can only
pick another token where transformers' two best logits are closer than 2 * delta; the test
requires the first N = 16 tokens to match except from such a near tie on.
"""

from __future__ import annotations

import json
from itertools import zip_longest
from pathlib import Path

import numpy as np
import pytest
from export_builds import qlora_build, qslm, scratch_build

llama_cpp = pytest.importorskip("llama_cpp")
torch = pytest.importorskip("torch")

N = 16
LOGIT_TOL = {"f16": 0.01, "q8_0": 0.2}
# The converter's own probe text (every kind of whitespace, digits, emoji, scripts), plus ours.
TOKENIZER_PROBES = [
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ ✅ 🦙🦙 3 33 333 "
    "3333 3.3 3..3 ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? "
    "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea?",
    "the cat sees the ball.  a dog  likes\tthe river",
    "### Instruction:\nExplain the measurements.\n\n### Response:\n",
]


@pytest.fixture(scope="module")
def converter_env(tmp_path_factory, monkeypatch_module):
    """A fresh cache, so the first export fetches the converter from the package index."""
    import os

    if not os.environ.get("QSLM_LLAMA_CPP"):
        monkeypatch_module.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    return scratch_build(tmp_path_factory.mktemp("quick"))


@pytest.fixture(scope="module")
def thesis(tmp_path_factory) -> Path:
    pytest.importorskip("bitsandbytes")
    return qlora_build(tmp_path_factory.mktemp("thesis"))


def export_gguf(build: Path, out: Path, outtype: str = "f16") -> Path:
    args = ["export", str(build), "--format", "gguf", "--out", str(out), "--outtype", outtype]
    result = qslm(*args)
    assert result.exit_code == 0, result.output
    return out / json.loads((out / "export.json").read_text())["gguf"]["file"]


def hf_greedy(folder: Path, ids: list[int]) -> tuple[list[int], list[float], np.ndarray]:
    """transformers' greedy tokens, the top-2 logit margin at each step, the prompt's logits."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    model.generation_config.eos_token_id = None  # N tokens always, through eos, as below
    with torch.no_grad():
        prompt_logits = model(torch.tensor([ids])).logits[0].numpy()
        out = model.generate(
            torch.tensor([ids]), max_new_tokens=N, do_sample=False,
            output_scores=True, return_dict_in_generate=True,
        )  # fmt: skip
    tokens = out.sequences[0, len(ids) :].tolist()
    assert len(tokens) == N
    margins = [float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in out.scores]
    return tokens, margins, prompt_logits


def check_against_transformers(gguf: Path, hf_folder: Path, prompt: str, outtype: str) -> int:
    """Assert tokenization, logits and greedy tokens agree; returns the tokens that matched."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_folder)
    llm = llama_cpp.Llama(str(gguf), n_ctx=256, logits_all=True, verbose=False, seed=0)
    for text in [*TOKENIZER_PROBES, prompt]:
        assert llm.tokenize(text.encode(), add_bos=True) == tokenizer(text)["input_ids"], text
    ids = tokenizer(prompt)["input_ids"]
    hf_tokens, margins, hf_logits = hf_greedy(hf_folder, ids)
    llm.reset()
    llm.eval(ids)
    delta = float(np.abs(np.asarray(llm.scores[: len(ids)]) - hf_logits).max())
    print(f"\n{gguf.name}: max |logit difference| over the prompt {delta:.4f}")
    assert delta < LOGIT_TOL[outtype], delta
    got = []
    for token in llm.generate(ids, temp=0.0, repeat_penalty=1.0, reset=True):
        got.append(token)
        if len(got) == N:
            break
    pairs = list(zip_longest(got, hf_tokens))
    agree = next((i for i, (a, b) in enumerate(pairs) if a != b), len(pairs))
    if agree < len(pairs):  # only a near tie may flip the argmax
        assert margins[agree] < 2 * LOGIT_TOL[outtype], (agree, margins[agree], got, hf_tokens)
    else:
        assert got == hf_tokens
    return agree


def test_scratch_build_to_gguf_runs_in_llama_cpp_like_transformers(converter_env, quick, tmp_path):
    merged = tmp_path / "merged"
    assert qslm("export", str(quick), "--format", "merged", "--out", str(merged)).exit_code == 0
    for outtype in ("f16", "q8_0"):
        gguf = export_gguf(quick, tmp_path / outtype, outtype)
        assert gguf.name == f"quick-v1-{outtype}.gguf"
        agree = check_against_transformers(gguf, merged, "the cat sees", outtype)
        print(f"\nquick {outtype}: {agree} of {N} greedy tokens agree, {gguf.stat().st_size} B")
    manifest = json.loads((tmp_path / "f16" / "export.json").read_text())
    assert manifest["converter"]["name"] == "llama.cpp convert_hf_to_gguf.py"
    assert manifest["converter"]["from"].startswith("llama-cpp-python ")
    assert manifest["gguf"]["pre_tokenizer"]["name"] == "gpt-2"


def test_gguf_carries_the_chat_template_and_stop_tokens_and_a_modelfile(
    converter_env, thesis, tmp_path
):
    from transformers import AutoTokenizer

    from qslm.data.formatting import alpaca_prompt

    merged = tmp_path / "merged"
    assert qslm("export", str(thesis), "--format", "merged", "--out", str(merged)).exit_code == 0
    gguf = export_gguf(thesis, tmp_path / "g")
    prompt = alpaca_prompt("Explain the measurements.")
    agree = check_against_transformers(gguf, merged, prompt, "f16")
    print(f"\nthesis-qa f16: {agree} of {N} greedy tokens agree, {gguf.stat().st_size} B")
    llm = llama_cpp.Llama(str(gguf), n_ctx=256, verbose=False)
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert llm.metadata["tokenizer.chat_template"] == tokenizer.chat_template
    assert int(llm.metadata["tokenizer.ggml.eos_token_id"]) == tokenizer.eos_token_id
    assert llm.metadata["tokenizer.ggml.add_bos_token"] == "true"
    modelfile = (tmp_path / "g" / "Modelfile").read_text()
    assert f"FROM ./{gguf.name}" in modelfile
    assert "### Instruction:\n{{ .Prompt }}\n\n### Response:\n{{ .Response }}" in modelfile
    assert 'PARAMETER stop "<|endoftext|>"' in modelfile
    assert 'PARAMETER stop "### Instruction:"' in modelfile


def test_an_architecture_the_converter_lacks_is_refused(converter_env, tmp_path):
    from conftest import synthetic_texts
    from transformers import AutoModelForCausalLM, OPTConfig

    from qslm.train.scratch import train_tokenizer

    build = tmp_path / "opt" / "v1"
    config = OPTConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
        max_position_embeddings=32, word_embed_proj_dim=16,
    )  # fmt: skip
    AutoModelForCausalLM.from_config(config).save_pretrained(build / "model")
    train_tokenizer(synthetic_texts(50, 0), 64, 2, 32).save_pretrained(build / "model")
    artifact = {"model_dir": "model", "kind": "full"}
    (build / "manifest.json").write_text(json.dumps({"name": "opt", "artifact": artifact}))
    result = qslm("export", str(build), "--format", "gguf", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2, result.output
    assert "does not support the architecture OPTForCausalLM" in result.output
    assert not (tmp_path / "o").exists()
