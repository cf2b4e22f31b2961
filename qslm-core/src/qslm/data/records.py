"""Checking and normalising the records of the ``jsonl`` and ``hf`` sources: alpaca-style
instruction records, chat records and plain text records, with errors that say where."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qslm.data.formatting import plain_text
from qslm.errors import ConfigError

FORMATS = ("auto", "alpaca", "chat", "text")
FIELDS = ("instruction", "input", "output", "messages", "text")
ROLES = ("system", "user", "assistant", "tool")


def check_columns(columns: Mapping[str, str], key: str) -> None:
    """``columns`` maps our field names to the data's own; a key we do not know is an error."""
    for ours in columns:
        if ours not in FIELDS:
            raise ConfigError(
                f"{key}.{ours}: not a record field; map one of {', '.join(FIELDS)} "
                "to a column of your data"
            )


def make_record(
    raw: Any, where: str, fmt: str = "auto", columns: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The record of one line or row (with ``"text"``), or a ConfigError starting ``where: ``.

    ``fmt`` "auto" reads a row with "messages" as chat, one with "instruction" or "output" as
    alpaca, one with "text" as text."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    columns = columns or {}

    def name(field: str) -> str:
        return columns.get(field, field)

    def label(field: str) -> str:
        return f'"{name(field)}"' + (f" (mapped to {field})" if name(field) != field else "")

    kind = fmt
    if fmt == "auto":
        if name("messages") in raw:
            kind = "chat"
        elif name("instruction") in raw or name("output") in raw:
            kind = "alpaca"
        elif name("text") in raw:
            kind = "text"
        else:
            fields = ", ".join(f'"{k}"' for k in raw) or "none"
            raise ConfigError(
                f'{where}: no "instruction"/"output", "messages" or "text" field (fields: {fields})'
            )

    def string(field: str, required: bool = True) -> str:
        if name(field) not in raw or raw[name(field)] is None:
            if required:
                raise ConfigError(f"{where}: missing {label(field)}")
            return ""
        value = raw[name(field)]
        if not isinstance(value, str):
            raise ConfigError(
                f"{where}: {label(field)} must be a string, not {type(value).__name__}"
            )
        return value

    if kind == "text":
        text = string("text")
        if not text.strip():
            raise ConfigError(f"{where}: {label('text')} is blank")
        return {"text": text}
    if kind == "alpaca":
        record = {
            "instruction": string("instruction"),
            "input": string("input", required=False),
            "output": string("output"),
        }
        if not record["output"].strip():
            raise ConfigError(f"{where}: {label('output')} is blank")
    else:
        record = {"messages": _messages(raw.get(name("messages")), where, label("messages"))}
    record["text"] = plain_text(record)
    return record


def _messages(value: Any, where: str, label: str) -> list[dict[str, str]]:
    if value is None:
        raise ConfigError(f"{where}: missing {label}")
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: {label} must be a non-empty list of messages")
    out = []
    for i, m in enumerate(value):
        at = f"{where}: messages[{i}]"
        if not isinstance(m, Mapping):
            raise ConfigError(f'{at}: expected an object with "role" and "content"')
        for key in ("role", "content"):
            if key not in m:
                raise ConfigError(f'{at}: missing "{key}"')
            if not isinstance(m[key], str):
                raise ConfigError(f'{at}: "{key}" must be a string, not {type(m[key]).__name__}')
        if m["role"] not in ROLES:
            raise ConfigError(f"{at}: unknown role {m['role']!r} (expected {', '.join(ROLES)})")
        out.append({"role": m["role"], "content": m["content"]})
    if out[-1]["role"] != "assistant":
        raise ConfigError(
            f"{where}: the last message must be the assistant's (the answer to learn)"
        )
    if not any(m["role"] == "user" for m in out):
        raise ConfigError(f"{where}: the messages have no user turn")
    return out


def kind_of(record: Mapping[str, Any]) -> str:
    return "chat" if "messages" in record else "alpaca" if "instruction" in record else "text"
