"""Packing texts into fixed-length token blocks, shared by training and evaluation so that both
see text the same way: every text preceded by the end-of-text token, all concatenated, then cut
into blocks of ``block_size`` tokens."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qslm.errors import QslmError


def record_texts(records: Iterable[dict[str, Any]], *, split: str) -> list[str]:
    """The non-blank ``"text"`` of each record; a clear error if there is none."""
    texts = [r["text"] for r in records if isinstance(r.get("text"), str) and r["text"].strip()]
    if not texts:
        raise QslmError(
            f'the {split} data has no text: every {split} record is missing "text" or blank. '
            "Check the data source's path and options."
        )
    return texts


def token_stream(tokenizer: Any, texts: list[str], separator_id: int) -> list[int]:
    """All texts as one list of token ids, each text preceded by ``separator_id``.

    A leading separator makes the stream look like what generation starts from: the tokenizer
    prepends the same token to a prompt.
    """
    ids: list[int] = []
    for encoded in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]:
        ids.append(separator_id)
        ids.extend(encoded)
    ids.append(separator_id)
    return ids


def pack(ids: list[int], block_size: int, *, keep_remainder: bool) -> list[list[int]]:
    """Cut ``ids`` into blocks of ``block_size``; a shorter last block is kept (if it has at least
    two tokens, one to predict) only when ``keep_remainder`` is true."""
    blocks = [ids[i : i + block_size] for i in range(0, len(ids), block_size)]
    if blocks and len(blocks[-1]) < block_size and (not keep_remainder or len(blocks[-1]) < 2):
        blocks.pop()
    return blocks
