"""``--format gguf``: the build merged into a transformers folder (:mod:`qslm.export.merged`),
then converted by llama.cpp's own ``convert_hf_to_gguf.py`` (:mod:`qslm.export.converter`),
with an Ollama ``Modelfile`` beside the GGUF file."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qslm.errors import ConfigError, QslmError
from qslm.export.converter import Converter
from qslm.export.merged import write_merged
from qslm.export.source import ExportSource
from qslm.export.templates import modelfile

OUTTYPES = ("f16", "q8_0", "bf16", "f32")
# GPT-2's pre-tokenizer as tokenizers writes it; llama.cpp implements it as "gpt-2" (its
# LLAMA_VOCAB_PRE_TYPE_GPT2: the same regex, byte-level, no prefix space).
_GPT2_PRE = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
# Converter log lines worth showing while it runs (the rest go to convert.log).
_SHOW = ("Model architecture", "Exporting model", "successfully exported", "qslm:", "ERROR")


def pre_tokenizer(model_dir: Path) -> tuple[str, str]:
    """The llama.cpp pre-tokenizer name our check vouches for (``"-"``: none, the converter
    decides alone) and why. Only a tokenizer that is exactly GPT-2's byte-level BPE scheme
    (no normaliser, GPT-2's pre-tokenizer) is vouched for, as ``gpt-2``."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return "-", "no tokenizer.json"
    spec = json.loads(path.read_text(encoding="utf-8"))
    pre = spec.get("pre_tokenizer") or {}
    model = spec.get("model") or {}
    same = {k: pre.get(k, True if k == "use_regex" else None) for k in _GPT2_PRE} == _GPT2_PRE
    if model.get("type") == "BPE" and spec.get("normalizer") is None and same:
        return (
            "gpt-2",
            "byte-level BPE with GPT-2's pre-tokenizer (ByteLevel, regex, no prefix space)",
        )
    return "-", f"pre-tokenizer {pre.get('type')!r}, left to the converter"


def write_gguf(
    source: ExportSource,
    folder: Path,
    *,
    outtype: str,
    converter: Converter,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Write ``<name>-<version>-<outtype>.gguf`` and a ``Modelfile`` into ``folder``; returns
    what the export manifest records about the conversion."""
    if outtype not in OUTTYPES:
        raise ConfigError(f"--outtype must be one of {', '.join(OUTTYPES)}, not {outtype!r}")
    hf = folder / ".hf"  # the merged model the converter reads; removed once converted
    hf.mkdir()
    fmt = write_merged(source, hf, progress)
    pre, why = pre_tokenizer(hf)
    name = f"{source.manifest.get('name') or source.path.parent.name}-{source.path.name}"
    gguf_name = f"{name}-{outtype}.gguf"
    progress(f"converting with llama.cpp's convert_hf_to_gguf.py ({converter.provenance['from']})")
    log = _run(converter, hf, folder / gguf_name, outtype, pre)
    shutil.rmtree(hf)
    shutil.move(str(log), folder / "convert.log")
    (folder / "convert.log").chmod(0o644)  # mkstemp made it private; it holds no secret
    (folder / "Modelfile").write_text(modelfile(gguf_name, fmt, source.label))
    return {
        "file": gguf_name,
        "outtype": outtype,
        "pre_tokenizer": {"name": pre, "why": why} if pre != "-" else {"why": why},
        "chat_template": fmt.origin,
        "stop": fmt.stop,
    }


def _run(converter: Converter, hf: Path, out: Path, outtype: str, pre: str) -> Path:
    """Run the converter in a child process, echoing its main lines; returns its log file."""
    fd, name = tempfile.mkstemp(prefix="qslm-convert-", suffix=".log")
    log = Path(name)
    cmd = [sys.executable, "-m", "qslm.export._convert_main", str(converter.root), pre, "--"]
    cmd += [str(hf), "--outfile", str(out), "--outtype", outtype]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with os.fdopen(fd, "w", encoding="utf-8") as sink:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sink.write(line)
            if any(key in line for key in _SHOW):
                print(f"  {line.rstrip()}", file=sys.stderr, flush=True)
        code = proc.wait()
    if code == 0:
        return log
    text = log.read_text(encoding="utf-8", errors="replace")
    if code == 3:
        log.unlink()
        arch = json.loads((hf / "config.json").read_text()).get("architectures", ["?"])[0]
        raise ConfigError(
            f"llama.cpp's converter ({converter.provenance['from']}) does not support the "
            f"architecture {arch}; export --format merged instead"
        )
    if "No space left on device" in text or "[Errno 28]" in text:
        raise OSError(errno.ENOSPC, "No space left on device")
    if "BPE pre-tokenizer was not recognized" in text:
        raise ConfigError(
            "llama.cpp's converter does not know this tokenizer's pre-tokenizer and qslm could "
            "not match it to one it implements; see docs/how-to/export.md (pre-tokenizers)"
        )
    last = [ln for ln in text.strip().splitlines() if ln.strip()][-1:] or ["no output"]
    raise QslmError(f"llama.cpp's converter failed: {last[0]} (full log: {log})")
