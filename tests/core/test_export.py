"""``qslm export --format merged``: a scratch build and a QLoRA build load in plain transformers
and generate what ``qslm generate`` generates; bad input is refused in one line; a full disk
leaves nothing under the final name."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
from export_builds import qlora_build, qslm, scratch_build

torch = pytest.importorskip("torch")

PROMPT = "the cat sees"


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    return scratch_build(tmp_path_factory.mktemp("quick"))


@pytest.fixture(scope="module")
def thesis(tmp_path_factory) -> Path:
    pytest.importorskip("bitsandbytes")
    return qlora_build(tmp_path_factory.mktemp("thesis"))


def export(build: Path, out: Path, *extra: str):
    return qslm("export", str(build), "--format", "merged", "--out", str(out), *extra)


def qslm_generate(build: Path, prompt: str, n: int = 16) -> str:
    result = qslm("generate", str(build), prompt, "--temperature", "0", "--max-new-tokens", str(n))
    assert result.exit_code == 0, result.output
    return result.stdout.removesuffix("\n")  # the streamer ends the text with a newline


def plain_greedy(folder: Path, prompt: str, n: int = 16) -> str:
    """What a transformers user does with the folder (no qslm, no peft)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=n, do_sample=False)
    return prompt + tokenizer.decode(
        out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    )


def test_scratch_build_merged_loads_in_transformers_and_matches_qslm_generate(quick, tmp_path):
    result = export(quick, tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip().splitlines()[-1]) == tmp_path / "m"
    assert "copying the model of quick@v1" in result.stderr
    out = tmp_path / "m"
    assert plain_greedy(out, PROMPT) == qslm_generate(quick, PROMPT)
    assert len(plain_greedy(out, PROMPT)) > len(PROMPT) + 8  # it did generate
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["format"] == "merged"
    assert manifest["source"]["build"] == str(quick.resolve())
    assert manifest["files"]["model.safetensors"] == (out / "model.safetensors").stat().st_size
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == generation["pad_token_id"] == 0


def test_chat_template_of_a_scratch_build_is_qslm_chats_transcript(quick, tmp_path):
    from transformers import AutoTokenizer

    from qslm.inference.chat import chat_prompt

    assert export(quick, tmp_path / "m").exit_code == 0
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "m")
    turns = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "the cat?"},
    ]
    rendered = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    plain = type("NoTemplate", (), {"chat_template": None})()
    assert rendered == tokenizer.bos_token + chat_prompt(plain, turns)[0]


def test_qlora_build_merged_matches_qslm_generate_and_carries_the_alpaca_template(thesis, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qslm.data.formatting import alpaca_prompt

    out = tmp_path / "m"
    result = export(thesis, out)
    assert result.exit_code == 0, result.output
    assert "merging the adapter of thesis-qa@v1 into its base (dequantised from 4-bit NF4)" in (
        result.stderr
    )
    assert not list(out.glob("adapter*"))  # a plain model, no peft files
    prompt = alpaca_prompt("Explain the measurements.")
    assert plain_greedy(out, prompt) == qslm_generate(thesis, prompt)
    tokenizer = AutoTokenizer.from_pretrained(out)
    chat = [{"role": "user", "content": "Explain the measurements."}]
    assert tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == (
        tokenizer.bos_token + prompt
    )
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["source"]["kind"] == "adapter"
    assert manifest["converter"]["name"] == "peft merge_and_unload"
    assert "### Instruction:" in manifest["stop"]
    # the adapter is in the weights: the merged model is not its base
    base = AutoModelForCausalLM.from_pretrained(
        thesis.parent.parent / "thesis-pretrain" / "v1" / "model"
    )
    merged = AutoModelForCausalLM.from_pretrained(out)
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert (merged(ids).logits - base(ids).logits).abs().max() > 1e-2


def test_existing_output_is_refused_unless_forced(quick, tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    refused = export(quick, out)
    assert refused.exit_code == 2
    assert f"--out {out}: the folder exists; pass --force to replace it" in refused.output
    assert (out / "keep.txt").read_text() == "mine"
    forced = export(quick, out, "--force")
    assert forced.exit_code == 0, forced.output
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()


def test_full_disk_leaves_no_file_under_the_final_name(quick, tmp_path, monkeypatch):
    import qslm.export.merged as merged

    def copy_half_then_fail(src, dst, *args, **kwargs):
        data = Path(src).read_bytes()
        Path(dst).write_bytes(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(merged.shutil, "copyfile", copy_half_then_fail)
    result = export(quick, tmp_path / "m")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: export to {tmp_path / 'm'} failed: no space left on device; "
        "nothing was written there"
    )
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # neither the export nor its temporary folder
    # with --force, the earlier export survives a failed replacement
    monkeypatch.undo()
    assert export(quick, tmp_path / "m").exit_code == 0
    before = (tmp_path / "m" / "model.safetensors").read_bytes()
    monkeypatch.setattr(merged.shutil, "copyfile", copy_half_then_fail)
    assert export(quick, tmp_path / "m", "--force").exit_code == 1
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_bad_builds_are_refused_in_one_line_with_exit_2(quick, tmp_path):
    def refused(build: str, *extra: str) -> str:
        result = qslm("export", build, "--format", "merged", "--out", str(tmp_path / "o"), *extra)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / "o").exists()
        return result.output.strip()

    gone = tmp_path / "builds" / "quick" / "v7"
    assert refused(str(gone)) == f"Error: {gone}: no such build (the folder does not exist)"
    assert "no build 'v9' of 'quick' (have v1)" in refused(
        "quick@v9", "--output", str(quick.parent.parent)
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (
        refused(str(empty)) == f"Error: {empty}: not a qslm build (no manifest.json in the folder)"
    )
    # an adapter build whose base folder was removed
    adapter = tmp_path / "lora" / "v1"
    (adapter / "adapter").mkdir(parents=True)
    artifact = {"model_dir": "adapter", "kind": "adapter", "base_model": str(tmp_path / "gone")}
    (adapter / "manifest.json").write_text(json.dumps({"name": "lora", "artifact": artifact}))
    message = refused(str(adapter))
    assert message.startswith(
        f"Error: {adapter / 'manifest.json'}: the adapter's base cannot be found"
    )
    assert str(tmp_path / "gone") in message and len(message.splitlines()) == 1


def test_a_build_missing_its_model_folder_is_refused(quick, tmp_path):
    broken = tmp_path / "quick" / "v1"
    shutil.copytree(quick, broken, ignore=shutil.ignore_patterns("model"))
    result = qslm("export", str(broken), "--format", "merged", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: {broken}: the build's folder 'model' is missing"
