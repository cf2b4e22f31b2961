"""Run llama.cpp's ``convert_hf_to_gguf.py`` (in a child process) with one seam.

``python -m qslm.export._convert_main LLAMA_CPP PRE -- CONVERTER_ARGS...``

The converter names a byte-level BPE tokenizer's pre-tokenizer by hashing the token ids of a
fixed text, so any locally trained vocabulary (all of qslm's) is unknown to it and it stops
(``NotImplementedError``). The hash cannot match: it depends on the vocabulary, not only on
the pre-tokenizer. qslm checks the tokenizer's pre-tokenizer itself (see
:func:`qslm.export.gguf.pre_tokenizer`) and passes the llama.cpp name in PRE; this wrapper
returns it only where the converter would otherwise refuse. Everything else (weights, vocab,
merges, special tokens, chat template, quantisation) is the converter's own code.

Exit code 3: the architecture is not one the converter supports.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path


def main() -> None:
    llama, pre, sep, *args = sys.argv[1:]
    assert sep == "--", "usage: LLAMA_CPP PRE -- CONVERTER_ARGS"
    root = Path(llama)
    # the converter's own gguf-py first: it is the one its code was written against
    sys.path[:0] = [str(root), str(root / "gguf-py")]
    import conversion
    import conversion.base as base

    model_dir = Path(args[0])
    config = json.loads((model_dir / "config.json").read_text())
    arch = (config.get("architectures") or ["?"])[0]
    try:
        conversion.get_model_class(arch)
    except NotImplementedError:
        print(f"qslm: architecture {arch} is not supported by this converter", file=sys.stderr)
        sys.exit(3)

    original = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer):
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            if pre == "-":
                raise
            print(f"qslm: pre-tokenizer checked by qslm: {pre}", file=sys.stderr)
            return pre

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    script = root / "convert_hf_to_gguf.py"
    sys.argv = [str(script), *args]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
