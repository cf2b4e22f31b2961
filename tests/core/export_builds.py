"""Tiny builds for the export tests, made by ``qslm run`` the way the examples make theirs:
a quickstart-style scratch build, and a thesis-qa-style pretrain + QLoRA (NF4) fine-tune on
the example's own thesis text."""

from __future__ import annotations

import textwrap
from pathlib import Path

from click.testing import CliRunner
from conftest import synthetic_texts

from qslm.cli import cli

ROOT = Path(__file__).resolve().parents[2]
THESIS = ROOT / "examples" / "thesis-qa" / "thesis"

# Widths are multiples of 64 for bitsandbytes' kernels (QLoRA); one thread on a shared CPU.
_SCRATCH = """
[train]
trainer = "scratch"
[train.options]
vocab_size = 300
layers = 2
hidden_size = 64
heads = 4
context_length = {context}
batch_size = 8
learning_rate = 1e-2
max_steps = {steps}
dropout = 0.0
threads = 1
"""


def run(pipeline: Path, out: Path) -> Path:
    result = CliRunner().invoke(cli, ["run", str(pipeline), "--output", str(out)])
    assert result.exit_code == 0, result.output
    return Path(result.output.strip().splitlines()[-1])


def scratch_build(tmp: Path) -> Path:
    """``quick/v1``: a tiny GPT trained from scratch on short sentences (as the quickstart)."""
    (tmp / "corpus.txt").write_text("\n\n".join(synthetic_texts(300, 0)))
    pipeline = tmp / "quick.toml"
    pipeline.write_text(
        textwrap.dedent("""
        [pipeline]
        name = "quick"
        seed = 3
        [data]
        source = "text"
        [data.options]
        paths = ["corpus.txt"]
        [attention]
        backend = "exact"
        """)
        + _SCRATCH.format(context=64, steps=40)
    )
    return run(pipeline, tmp / "builds")


def qlora_build(tmp: Path) -> Path:
    """``thesis-qa/v1``: a QLoRA (NF4) adapter tuned with the Alpaca template on instruction
    records from the thesis, over ``thesis-pretrain/v1`` pretrained from scratch on it."""
    pre = tmp / "pretrain.toml"
    pre.write_text(
        textwrap.dedent(f"""
        [pipeline]
        name = "thesis-pretrain"
        seed = 7
        [data]
        source = "text"
        [data.options]
        paths = ["{THESIS}/*.md"]
        """)
        + _SCRATCH.format(context=256, steps=30)
    )
    base = run(pre, tmp / "builds")
    ft = tmp / "finetune.toml"
    ft.write_text(
        textwrap.dedent(f"""
        [pipeline]
        name = "thesis-qa"
        seed = 7
        [data]
        source = "text"
        [data.options]
        paths = ["{THESIS}/*.md"]
        mode = "instructions"
        context = 0
        [train]
        trainer = "lora"
        [train.options]
        base_model = "{base.parent}@latest"
        quantization = "nf4"
        r = 16
        alpha = 32
        dropout = 0.0
        template = "alpaca"
        loss_on = "response"
        max_length = 256
        batch_size = 4
        learning_rate = 1e-2
        max_steps = 8
        threads = 1
        """)
    )
    return run(ft, tmp / "builds")


def qslm(*args: str):
    return CliRunner().invoke(cli, [*args])
