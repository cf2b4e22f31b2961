"""Instruction formatting: a record -> (prompt, response) text, and records -> token ids with
labels for causal-LM fine-tuning (loss on every token, or on the response tokens only).

Templates: ``alpaca`` (the Stanford Alpaca text), ``chat`` (the tokenizer's own chat template),
``plain`` (no prompt; the record's ``"text"`` is the response) and ``auto`` (chat for chat records
when the tokenizer has a template, alpaca for instruction records, else plain).

We write this ourselves because the prompt/response boundary has to be exact for response-only
loss, and the same template has to render prompts at evaluation time (``concepts``). Padding is
transformers' ``DataCollatorForSeq2Seq`` (labels padded with -100).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qslm.errors import QslmError

TEMPLATES = ("auto", "alpaca", "chat", "plain")

ALPACA = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)

IGNORE_INDEX = -100  # the label value torch's cross-entropy (and transformers) ignores


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def is_chat(record: dict[str, Any]) -> bool:
    return isinstance(record.get("messages"), list) and bool(record["messages"])


def is_instruction(record: dict[str, Any]) -> bool:
    return isinstance(record.get("instruction"), str) and isinstance(record.get("output"), str)


def resolve_template(record: dict[str, Any], template: str, tokenizer: Any = None) -> str:
    """The concrete template ("alpaca", "chat" or "plain") used for one record."""
    if template not in TEMPLATES:
        raise QslmError(f"unknown template {template!r}; expected one of {', '.join(TEMPLATES)}")
    if template != "auto":
        return template
    if is_chat(record) and tokenizer is not None and has_chat_template(tokenizer):
        return "chat"
    if is_instruction(record) or is_chat(record):
        return "alpaca"
    return "plain"


def alpaca_prompt(instruction: str, input: str = "") -> str:
    """The Alpaca prompt, ending with ``### Response:`` and a newline."""
    if input.strip():
        return ALPACA.format(instruction=instruction.strip(), input=input.strip())
    return ALPACA_NO_INPUT.format(instruction=instruction.strip())


def _instruction_fields(record: dict[str, Any]) -> tuple[str, str, str]:
    """(instruction, input, output) of an instruction record, or of a chat record read as one:
    the last user turn is the instruction, the turns before it the input, the final assistant
    turn the output."""
    if is_instruction(record):
        return record["instruction"], str(record.get("input") or ""), record["output"]
    if is_chat(record):
        messages = record["messages"]
        if messages[-1].get("role") != "assistant":
            raise QslmError("a chat record must end with an assistant message to train on")
        users = [i for i, m in enumerate(messages[:-1]) if m.get("role") == "user"]
        if not users:
            raise QslmError("a chat record has no user message before the assistant's answer")
        last = users[-1]
        context = "\n".join(f"{m['role']}: {m['content']}" for m in messages[:last])
        return messages[last]["content"], context, messages[-1]["content"]
    raise QslmError(
        'the alpaca template needs "instruction" and "output" (or "messages") in every record; '
        f"this record has {sorted(record)}"
    )


def format_example(
    record: dict[str, Any], template: str = "auto", tokenizer: Any = None
) -> tuple[str, str]:
    """``(prompt, response)`` of a record; prompt + response is the full training text."""
    kind = resolve_template(record, template, tokenizer)
    if kind == "plain":
        text = record.get("text")
        if not isinstance(text, str):
            raise QslmError(
                f'the plain template needs "text" in every record; got {sorted(record)}'
            )
        return "", text
    if kind == "alpaca":
        instruction, input, output = _instruction_fields(record)
        return alpaca_prompt(instruction, input), output
    return _chat_example(record, tokenizer)


def _chat_example(record: dict[str, Any], tokenizer: Any) -> tuple[str, str]:
    if tokenizer is None or not has_chat_template(tokenizer):
        raise QslmError(
            "the chat template needs a tokenizer with a chat template (tokenizer.chat_template); "
            'this tokenizer has none: use template = "alpaca" or a chat model\'s tokenizer'
        )
    if not is_chat(record):
        if not is_instruction(record):
            raise QslmError(f'the chat template needs "messages"; got {sorted(record)}')
        user = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
        messages = [
            {"role": "user", "content": user},
            {"role": "assistant", "content": record["output"]},
        ]
    else:
        messages = record["messages"]
    if messages[-1].get("role") != "assistant":
        raise QslmError("a chat record must end with an assistant message to train on")
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tokenize=False, add_generation_prompt=True
    )
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    # The template's own end-of-turn marker belongs to the response (the model must learn to
    # stop); when the rendering of the whole chat does not extend the prompt, fall back to the
    # answer text alone.
    if full.startswith(prompt):
        return prompt, full[len(prompt) :]
    return prompt, messages[-1]["content"]


def generation_prompt(record: dict[str, Any], template: str = "auto", tokenizer: Any = None) -> str:
    """The prompt to generate an answer from, for a record that may have no output yet
    (``{"instruction": question}`` or ``{"messages": [...user...]}``). With the plain template
    the prompt is the question itself, which the model continues."""
    probe = dict(record)
    if is_chat(probe) and probe["messages"][-1].get("role") != "assistant":
        probe["messages"] = [*probe["messages"], {"role": "assistant", "content": ""}]
    elif "instruction" in probe and "output" not in probe:
        probe["output"] = ""
    kind = resolve_template(probe, template, tokenizer)
    if kind == "plain":  # a model trained on plain text continues the question itself
        if isinstance(probe.get("text"), str):
            return probe["text"]
        question = str(probe.get("instruction", ""))
        return question + (f"\n\n{probe['input']}" if probe.get("input") else "")
    if kind == "chat":
        messages = probe["messages"] if is_chat(probe) else None
        if messages is None:
            user = probe["instruction"] + (f"\n\n{probe['input']}" if probe.get("input") else "")
            messages = [{"role": "user", "content": user}, {"role": "assistant", "content": ""}]
        if tokenizer is None or not has_chat_template(tokenizer):
            return format_example(probe, "chat", tokenizer)[0]  # raises the clear error
        return tokenizer.apply_chat_template(
            messages[:-1], tokenize=False, add_generation_prompt=True
        )
    return format_example(probe, kind, tokenizer)[0]


def plain_text(record: dict[str, Any]) -> str:
    """The ``"text"`` every record carries: the Alpaca rendering of an instruction record, the
    turns of a chat record as ``role: content`` lines."""
    if is_instruction(record):
        return (
            alpaca_prompt(record["instruction"], str(record.get("input") or "")) + record["output"]
        )
    if is_chat(record):
        return "\n".join(f"{m['role']}: {m['content']}" for m in record["messages"])
    return str(record.get("text", ""))


class TokenizedExamples(list):
    """A list of ``{"input_ids", "attention_mask", "labels"}`` dicts with a ``stats`` dict:
    examples, truncated, dropped (no response token left), retokenized (a merge crossed the
    prompt/response boundary), tokens."""

    stats: dict[str, int]


def _encode(tokenizer: Any, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special, verbose=False)["input_ids"])


def tokenize_examples(
    records: Iterable[dict[str, Any]],
    tokenizer: Any,
    *,
    template: str = "auto",
    max_length: int = 512,
    loss_on: str = "all",
) -> TokenizedExamples:
    """Token ids and labels of every record: prompt + response + eos, cut to ``max_length``.

    With ``loss_on="response"`` the prompt tokens' labels are -100. The boundary is found by
    tokenizing the prompt and the full text: the full text's ids are used when they start with
    the prompt's ids; when a merge crosses the boundary, the example is the prompt's ids followed
    by the response's own ids, so training sees the prompt tokenized exactly as generation does.
    An example left without a response token to learn (a prompt longer than ``max_length``) is
    dropped and counted.
    """
    if loss_on not in ("all", "response"):
        raise QslmError(f"loss_on must be 'all' or 'response', not {loss_on!r}")
    if max_length < 2:
        raise QslmError(f"max_length must be at least 2, not {max_length}")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise QslmError("the tokenizer has no eos token, so examples cannot be ended")
    # Some tokenizers (T5-style) end every encoding with eos; ours goes after the response.
    probe = _encode(tokenizer, "a", True)
    appends_eos = probe[-1:] == [eos] and _encode(tokenizer, "a", False)[-1:] != [eos]
    out = TokenizedExamples()
    stats = {"examples": 0, "truncated": 0, "dropped": 0, "retokenized": 0, "tokens": 0}
    for record in records:
        kind = resolve_template(record, template, tokenizer)
        prompt, response = format_example(record, kind, tokenizer)
        # A chat template writes its own special tokens (bos) into the text.
        special = kind != "chat"
        prompt_ids = _encode(tokenizer, prompt, special) if prompt else []
        if special and not prompt:
            prompt_ids = _encode(tokenizer, "", True)  # bos, if the tokenizer adds one
        full_ids = _encode(tokenizer, prompt + response, special)
        if special and appends_eos:  # we append our own eos after the response
            prompt_ids, full_ids = prompt_ids[:-1], full_ids[:-1]
        if full_ids[: len(prompt_ids)] == prompt_ids:
            ids = full_ids
        else:
            stats["retokenized"] += 1
            ids = prompt_ids + _encode(tokenizer, response, False)
        n_prompt = len(prompt_ids)
        # A chat template that ends the turn with eos (Qwen's <|im_end|>, then "\n") already
        # taught the model to stop; a second eos after its newline would teach nothing.
        ended = kind == "chat" and bool(tokenizer.eos_token) and tokenizer.eos_token in response
        if not ended and (not ids or ids[-1] != eos):
            ids = [*ids, eos]
        labels = list(ids)
        if loss_on == "response":
            labels[:n_prompt] = [IGNORE_INDEX] * n_prompt
        if len(ids) > max_length:
            stats["truncated"] += 1
            ids, labels = ids[:max_length], labels[:max_length]
        # The first token is never predicted, so it does not count as something to learn.
        if all(v == IGNORE_INDEX for v in labels[1:]):
            stats["dropped"] += 1
            continue
        stats["examples"] += 1
        stats["tokens"] += len(ids)
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    out.stats = stats
    return out


def data_collator(tokenizer: Any) -> Any:
    """transformers' ``DataCollatorForSeq2Seq``: pads ids with the pad token and labels with
    -100. A tokenizer without a pad token pads with its eos token (masked out either way)."""
    from transformers import DataCollatorForSeq2Seq

    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise QslmError("the tokenizer has neither a pad nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)
