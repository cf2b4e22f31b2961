"""qslm export on one build: time and size of each format, and how closely llama.cpp
(llama-cpp-python) follows transformers on the exported weights.

    python benchmarks/export_gguf.py builds/quickstart/v1 --prompt "Simulated annealing" -n 32

For each GGUF type: max |logit difference| over the prompt, and the number of the first N
greedy tokens that agree before the first difference (with transformers' top-2 margin there).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from qslm.cli import cli


def timed_export(build: str, out: Path, *args: str) -> float:
    start = time.perf_counter()
    result = CliRunner().invoke(cli, ["export", build, "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--prompt", action="append", required=True)
    parser.add_argument("-n", type=int, default=32)
    a = parser.parse_args()
    import llama_cpp

    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"transformers {metadata.version('transformers')}, "
          f"llama-cpp-python {metadata.version('llama-cpp-python')}")  # fmt: skip
    tmp = Path(tempfile.mkdtemp())
    seconds = timed_export(a.build, tmp / "merged", "--format", "merged")
    size = sum(p.stat().st_size for p in (tmp / "merged").glob("*.safetensors"))
    print(f"merged: {seconds:.1f} s, model.safetensors {size / 1e6:.2f} MB")
    tok = AutoTokenizer.from_pretrained(tmp / "merged")
    model = AutoModelForCausalLM.from_pretrained(tmp / "merged").eval()
    for outtype in ("f16", "q8_0"):
        seconds = timed_export(a.build, tmp / outtype, "--format", "gguf", "--outtype", outtype)
        gguf = next((tmp / outtype).glob("*.gguf"))
        print(f"gguf {outtype}: {seconds:.1f} s, {gguf.stat().st_size / 1e6:.2f} MB")
        llm = llama_cpp.Llama(str(gguf), n_ctx=512, logits_all=True, verbose=False)
        for prompt in a.prompt:
            ids = tok(prompt)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0].numpy()
                out = model.generate(torch.tensor([ids]), max_new_tokens=a.n, do_sample=False,
                                     output_scores=True, return_dict_in_generate=True)  # fmt: skip
            ref = out.sequences[0, len(ids) :].tolist()
            llm.reset()
            llm.eval(ids)
            delta = float(np.abs(np.asarray(llm.scores[: len(ids)]) - logits).max())
            got = []
            for t in llm.generate(ids, temp=0.0, repeat_penalty=1.0):
                got.append(t)
                if t == llm.token_eos() or len(got) == len(ref):
                    break
            same = next((i for i, (x, y) in enumerate(zip(got, ref, strict=False)) if x != y),
                        min(len(got), len(ref)))  # fmt: skip
            note = ""
            if same < len(ref):
                top = out.scores[same][0].topk(2).values
                note = f", top-2 margin there {float(top[0] - top[1]):.3f}"
            print(f"  {prompt[:30]!r}: max |dlogit| {delta:.4f}, {same}/{len(ref)} greedy tokens "
                  f"agree{note}")  # fmt: skip


if __name__ == "__main__":
    main()
