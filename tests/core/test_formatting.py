"""Instruction formatting: templates, the exact prompt/response boundary, truncation, padding."""

from __future__ import annotations

import pytest

from qslm.data.formatting import (
    ALPACA_NO_INPUT,
    IGNORE_INDEX,
    data_collator,
    format_example,
    generation_prompt,
    plain_text,
    resolve_template,
    tokenize_examples,
)
from qslm.errors import QslmError

pytest.importorskip("transformers")

# A chat template whose generation prompt ends in a space: " Paris" is one pre-token of the
# full text, so a BPE merge crosses the prompt/response boundary.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)

TEXTS = [
    "user: what is the capital of France?\nassistant: Paris is the capital of France.",
    "### Instruction:\nName the capital.\n\n### Response:\nParis, of course.",
    "The capital of France is Paris. Paris is large. Paris has museums.",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    from qslm.train.scratch import train_tokenizer

    return train_tokenizer(TEXTS, vocab_size=400, min_frequency=2, context_length=256)


@pytest.fixture(scope="module")
def chat_tokenizer(tokenizer):
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = CHAT_TEMPLATE
    return tok


INSTR = {"instruction": "Name the capital.", "input": "France", "output": "Paris, of course."}
CHAT = {
    "messages": [
        {"role": "user", "content": "what is the capital of France?"},
        {"role": "assistant", "content": "Paris"},
    ]
}


def test_alpaca_prompt_and_response():
    prompt, response = format_example(INSTR, "alpaca")
    assert prompt.endswith("### Input:\nFrance\n\n### Response:\n")
    assert "### Instruction:\nName the capital." in prompt
    assert response == "Paris, of course."
    no_input, _ = format_example({"instruction": "Say hi.", "output": "hi"}, "alpaca")
    assert no_input == ALPACA_NO_INPUT.format(instruction="Say hi.")
    assert "### Input:" not in no_input


def test_auto_picks_chat_alpaca_or_plain(tokenizer, chat_tokenizer):
    assert resolve_template(CHAT, "auto", chat_tokenizer) == "chat"
    assert resolve_template(CHAT, "auto", tokenizer) == "alpaca"  # no chat template
    assert resolve_template(INSTR, "auto", chat_tokenizer) == "alpaca"
    assert resolve_template({"text": "x"}, "auto", chat_tokenizer) == "plain"
    assert format_example({"text": "just text"}, "plain") == ("", "just text")


def test_chat_without_a_template_is_a_clear_error(tokenizer):
    with pytest.raises(QslmError, match="chat template"):
        format_example(CHAT, "chat", tokenizer)
    with pytest.raises(QslmError, match="unknown template"):
        format_example(CHAT, "vicuna", tokenizer)
    with pytest.raises(QslmError, match='"instruction" and "output"'):
        format_example({"text": "x"}, "alpaca")


def test_chat_uses_the_tokenizers_template(chat_tokenizer):
    prompt, response = format_example(CHAT, "chat", chat_tokenizer)
    assert prompt == "user: what is the capital of France?\nassistant: "
    assert response == "Paris\n"  # the template's end-of-turn newline is part of the answer
    assert generation_prompt({"instruction": "what?"}, "chat", chat_tokenizer) == (
        "user: what?\nassistant: "
    )
    assert generation_prompt({"instruction": "what?"}, "alpaca").endswith("### Response:\n")
    assert generation_prompt({"instruction": "the cat"}, "plain") == "the cat"


def test_response_only_labels_cover_exactly_the_response(tokenizer):
    (ex,) = tokenize_examples([INSTR], tokenizer, loss_on="response", max_length=256)
    prompt, response = format_example(INSTR, "alpaca")
    n_prompt = len(tokenizer(prompt)["input_ids"])
    assert ex["input_ids"][:n_prompt] == tokenizer(prompt)["input_ids"]
    assert ex["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    learned = ex["labels"][n_prompt:]
    assert IGNORE_INDEX not in learned and learned == ex["input_ids"][n_prompt:]
    assert learned[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(learned[:-1]) == response
    (every,) = tokenize_examples([INSTR], tokenizer, loss_on="all", max_length=256)
    assert every["labels"] == every["input_ids"] == ex["input_ids"]


def test_a_merge_across_the_boundary_keeps_the_generation_time_prompt(chat_tokenizer):
    prompt, response = format_example(CHAT, "chat", chat_tokenizer)
    enc = lambda t: chat_tokenizer(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt_ids, full_ids = enc(prompt), enc(prompt + response)
    # the premise: tokenizing the whole text merges " " with "Paris"
    assert full_ids[: len(prompt_ids)] != prompt_ids
    examples = tokenize_examples([CHAT], chat_tokenizer, loss_on="response", max_length=256)
    (ex,) = examples
    assert examples.stats["retokenized"] == 1
    assert ex["input_ids"][: len(prompt_ids)] == prompt_ids  # what generation starts from
    learned = [t for t in ex["labels"] if t != IGNORE_INDEX]
    assert chat_tokenizer.decode(learned[:-1]) == response
    assert ex["labels"][: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)


def test_plain_records_learn_every_token(tokenizer):
    (ex,) = tokenize_examples([{"text": "Paris is large."}], tokenizer, loss_on="response")
    assert ex["labels"][0] == IGNORE_INDEX  # the leading bos, never predicted
    assert ex["labels"][1:] == ex["input_ids"][1:]
    assert tokenizer.decode(ex["input_ids"][1:-1]) == "Paris is large."


def test_truncation_is_counted_and_prompt_only_examples_dropped(tokenizer):
    long = {"text": "Paris has museums. " * 40}
    out = tokenize_examples([long, INSTR], tokenizer, loss_on="response", max_length=20)
    assert out.stats["truncated"] == 2
    assert out.stats["dropped"] == 1  # INSTR's prompt alone fills 20 tokens
    assert len(out) == 1 and len(out[0]["input_ids"]) == 20
    assert out.stats["examples"] == 1 and out.stats["tokens"] == 20
    kept = tokenize_examples([INSTR], tokenizer, loss_on="all", max_length=20)
    assert len(kept) == 1 and kept.stats["dropped"] == 0


def test_collator_pads_labels_with_ignore_index(tokenizer):
    records = [{"text": "Paris."}, {"text": "The capital of France is Paris."}]
    batch = data_collator(tokenizer)(tokenize_examples(records, tokenizer))
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.shape == labels.shape == mask.shape and ids.shape[0] == 2
    n = int(mask[0].sum())
    assert (labels[0, n:] == IGNORE_INDEX).all() and (mask[0, n:] == 0).all()
    assert (labels[1] != IGNORE_INDEX).all()


def test_plain_text_renders_every_record_kind():
    assert plain_text(INSTR) == format_example(INSTR, "alpaca")[0] + INSTR["output"]
    assert plain_text(CHAT) == "user: what is the capital of France?\nassistant: Paris"
    with pytest.raises(QslmError, match="loss_on"):
        tokenize_examples([INSTR], None, loss_on="prompt")


def test_a_chat_turn_that_ends_with_eos_gets_no_second_one(chat_tokenizer):
    import copy

    tok = copy.deepcopy(chat_tokenizer)
    tok.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}<|endoftext|>\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    (ex,) = tokenize_examples([CHAT], tok, template="chat", loss_on="response")
    learned = [t for t in ex["labels"] if t != IGNORE_INDEX]
    assert tok.decode(learned) == " Paris<|endoftext|>\n"
    assert ex["input_ids"].count(tok.eos_token_id) == 2  # the user's turn end and the answer's
