"""The prompt of a conversation for a build with no instruction template of its own: shared by
``qslm chat`` and the server's chat completions."""

from __future__ import annotations

from typing import Any

SIMPLE_USER, SIMPLE_ASSISTANT = "User:", "Assistant:"


def chat_prompt(tokenizer: Any, turns: list[dict[str, str]]) -> tuple[str, list[str] | None]:
    """The prompt for a conversation, and the strings that end the assistant's turn.

    The tokenizer's chat template when it has one (the build was tuned on it); otherwise a
    plain ``User: ... / Assistant: ...`` transcript that stops where the model starts the
    next user turn.
    """
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        return text, None
    lines = [
        f"{SIMPLE_USER if t['role'] == 'user' else SIMPLE_ASSISTANT} {t['content']}" for t in turns
    ]
    return "\n".join(lines) + f"\n{SIMPLE_ASSISTANT}", [f"\n{SIMPLE_USER}"]
