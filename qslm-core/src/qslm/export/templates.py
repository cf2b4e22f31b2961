"""The chat template an export carries, and the Ollama ``Modelfile`` written beside a GGUF.

A build keeps its tokenizer's own chat template when it has one. qslm's own tokenizers have
none, so the export writes the format the build was used in: the Alpaca prompt of
:mod:`qslm.data.formatting` for a model tuned on instructions, else the plain
``User: / Assistant:`` transcript ``qslm chat`` uses. Both are rendered from the same constants
qslm trains and chats with, so a chat UI prompts the model the way qslm did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from qslm.data.formatting import ALPACA, ALPACA_NO_INPUT
from qslm.export.source import ExportSource
from qslm.inference.chat import SIMPLE_ASSISTANT, SIMPLE_USER


def _literal(text: str) -> str:
    """``text`` as a Jinja string expression (whitespace control then cannot eat into it)."""
    return "{{ " + json.dumps(text) + " }}"


def _alpaca_jinja() -> str:
    # The last user turn is the instruction, earlier turns the input, as in formatting.py.
    def body(text: str) -> str:
        head, rest = text.split("{instruction}")
        if "{input}" not in rest:
            return _literal(head) + "{{ messages[ns.last]['content'] | trim }}" + _literal(rest)
        middle, tail = rest.split("{input}")
        return (
            _literal(head) + "{{ messages[ns.last]['content'] | trim }}" + _literal(middle)
            + "{{ ns.context | trim }}" + _literal(tail)
        )  # fmt: skip

    return (
        "{%- set ns = namespace(last=-1, context='') -%}"
        "{%- for m in messages -%}{%- if m['role'] == 'user' -%}"
        "{%- set ns.last = loop.index0 -%}{%- endif -%}{%- endfor -%}"
        "{%- for m in messages[:ns.last] -%}"
        "{%- set ns.context = ns.context + ('\\n' if ns.context else '') + m['role'] + ': ' "
        "+ m['content'] -%}{%- endfor -%}"
        "{{ bos_token }}{%- if ns.context | trim -%}"
        + body(ALPACA)
        + "{%- else -%}"
        + body(ALPACA_NO_INPUT)
        + "{%- endif -%}"
        "{%- for m in messages[ns.last + 1:] -%}{%- if m['role'] == 'assistant' -%}"
        "{{ m['content'] }}{{ eos_token }}{%- endif -%}{%- endfor -%}"
    )


def _transcript_jinja() -> str:
    return (
        "{{ bos_token }}{%- for m in messages -%}{%- if not loop.first -%}"
        + _literal("\n")
        + "{%- endif -%}{%- if m['role'] == 'user' -%}"
        + _literal(SIMPLE_USER + " ")
        + "{%- elif m['role'] == 'system' -%}"
        + _literal("System: ")
        + "{%- else -%}"
        + _literal(SIMPLE_ASSISTANT + " ")
        + "{%- endif -%}{{ m['content'] }}{%- endfor -%}"
        "{%- if add_generation_prompt -%}" + _literal("\n" + SIMPLE_ASSISTANT) + "{%- endif -%}"
    )


# Ollama's templates are Go templates; .Prompt is the last user message.
_ALPACA_GO = ALPACA_NO_INPUT.replace("{instruction}", "{{ .Prompt }}") + "{{ .Response }}"
_TRANSCRIPT_GO = (
    "{{- range $i, $m := .Messages }}{{ if $i }}\n{{ end }}"
    '{{ if eq .Role "user" }}' + SIMPLE_USER + ' {{ else if eq .Role "system" }}System: '
    "{{ else }}" + SIMPLE_ASSISTANT + " {{ end }}{{ .Content }}{{ end }}\n" + SIMPLE_ASSISTANT
)


@dataclass
class ChatFormat:
    """The chat template to carry (None: keep the tokenizer's), where it came from, the Go
    template for Ollama (None: Ollama reads the GGUF's template) and the stop strings."""

    origin: str
    jinja: str | None
    ollama: str | None
    stop: list[str] = field(default_factory=list)


def chat_format(source: ExportSource, tokenizer: Any) -> ChatFormat:
    """The chat format of ``source``'s model, as described in the module docstring."""
    eos = [tokenizer.eos_token] if tokenizer.eos_token else []
    if getattr(tokenizer, "chat_template", None):
        return ChatFormat("the tokenizer's own chat template", None, None, eos)
    template = source.training_option("template", "auto")
    instructions = source.data_option("mode") == "instructions"
    if source.kind == "adapter" and (template == "alpaca" or (template == "auto" and instructions)):
        return ChatFormat(
            "the Alpaca prompt the build was tuned on", _alpaca_jinja(), _ALPACA_GO,
            [*eos, "### Instruction:"],
        )  # fmt: skip
    return ChatFormat(
        "the plain User/Assistant transcript of qslm chat", _transcript_jinja(), _TRANSCRIPT_GO,
        [*eos, SIMPLE_USER],
    )  # fmt: skip


def modelfile(gguf_name: str, fmt: ChatFormat, source_label: str) -> str:
    """An Ollama Modelfile for ``gguf_name`` (in the same folder): FROM, TEMPLATE, stops."""
    lines = [
        f"# Ollama Modelfile for {source_label}, written by qslm export",
        f"FROM ./{gguf_name}",
    ]
    if fmt.ollama is not None:
        lines.append(f'TEMPLATE """{fmt.ollama}"""')
    else:
        lines.append("# TEMPLATE: the GGUF carries the tokenizer's chat template")
    lines += [f"PARAMETER stop {json.dumps(s)}" for s in fmt.stop]
    return "\n".join(lines) + "\n"
