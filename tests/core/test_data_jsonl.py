"""The ``jsonl`` data source: alpaca, chat and text lines, line-numbered errors, seeded split."""

from __future__ import annotations

import json

import pytest

from qslm.context import RunContext
from qslm.data.formatting import format_example
from qslm.data.jsonl import JsonlOptions, JsonlSource
from qslm.errors import ConfigError


def _ctx(tmp_path, seed=0):
    return RunContext(config=None, registry=None, build_dir=tmp_path, seed=seed)


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")


def _source(tmp_path, **options):
    return JsonlSource(JsonlOptions(**options), base_dir=tmp_path)


ALPACA = [{"instruction": f"Add {i} and 1.", "input": "", "output": f"{i + 1}"} for i in range(20)]
CHAT = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
}


def test_alpaca_and_chat_lines_become_records_with_text(tmp_path):
    _write(tmp_path / "data.jsonl", [*ALPACA, CHAT, CHAT, {"text": "plain words"}, ""])
    source = _source(tmp_path, paths=["data.jsonl"], validation_fraction=0.0)
    assert source.plan() == ["1 file(s), 23 record(s) (alpaca 20, chat 2, text 1)"]
    data = source.load(_ctx(tmp_path))
    assert data.info["duplicates_dropped"] == 1
    assert data.info["kinds"] == {"alpaca": 20, "chat": 1, "text": 1}
    first = data.train[0]
    assert first["instruction"] == "Add 0 and 1." and first["output"] == "1"
    prompt, response = format_example(first, "alpaca")
    assert first["text"] == prompt + response
    chat = next(r for r in data.train if "messages" in r)
    assert chat["messages"] == CHAT["messages"]
    assert chat["text"].endswith("assistant: Paris.")
    assert data.train[-1] == {"text": "plain words"}


def test_split_is_seeded_and_the_digest_is_of_the_bytes(tmp_path):
    _write(tmp_path / "a.jsonl", ALPACA)
    source = _source(tmp_path, paths=["*.jsonl"], validation_fraction=0.25)
    one, two = source.load(_ctx(tmp_path, 5)), source.load(_ctx(tmp_path, 5))
    assert len(one.validation) == 5 and len(one.train) == 15
    assert one.validation == two.validation and one.sha256 == two.sha256
    other = source.load(_ctx(tmp_path, 6))
    assert other.validation != one.validation and other.sha256 == one.sha256
    _write(tmp_path / "a.jsonl", ALPACA[:-1])
    assert source.load(_ctx(tmp_path, 5)).sha256 != one.sha256


def test_validation_files_replace_the_split(tmp_path):
    _write(tmp_path / "train.jsonl", ALPACA)
    _write(tmp_path / "val.jsonl", [ALPACA[0], {"instruction": "Add 99 and 1.", "output": "100"}])
    data = _source(tmp_path, paths=["train.jsonl"], validation_paths=["val.jsonl"]).load(
        _ctx(tmp_path)
    )
    assert [r["output"] for r in data.validation] == ["1", "100"]
    assert len(data.train) == 19  # the record also held out is not trained on
    assert data.info["train_records_also_in_validation_dropped"] == 1


def test_columns_map_other_field_names(tmp_path):
    _write(tmp_path / "qa.jsonl", [{"question": "Why?", "answer": "Because."}])
    source = _source(
        tmp_path,
        paths=["qa.jsonl"],
        columns={"instruction": "question", "output": "answer"},
        validation_fraction=0.0,
    )
    (record,) = source.load(_ctx(tmp_path)).train
    assert (record["instruction"], record["input"], record["output"]) == ("Why?", "", "Because.")
    with pytest.raises(ConfigError, match=r"data\.options\.columns\.question: not a record field"):
        _source(tmp_path, paths=["qa.jsonl"], columns={"question": "q"}).plan()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"instruction": "x", "input": ""', r"data\.jsonl:3: not valid JSON \("),
        ('{"instruction": "x", "input": ""}', r'data\.jsonl:3: missing "output"$'),
        ('{"instruction": "x", "output": 7}', r'data\.jsonl:3: "output" must be a string, not int'),
        ("[1, 2]", r"data\.jsonl:3: expected a JSON object, got list"),
        ('{"prompt": "x"}', r'data\.jsonl:3: no "instruction"/"output", "messages" or "text"'),
        ('{"messages": [{"role": "user"}]}', r'data\.jsonl:3: messages\[0\]: missing "content"'),
        (
            '{"messages": [{"role": "user", "content": "hi"}]}',
            r"data\.jsonl:3: the last message must be the assistant's",
        ),
        (
            '{"messages": [{"role": "bot", "content": "hi"}]}',
            r"data\.jsonl:3: messages\[0\]: unknown role 'bot'",
        ),
    ],
)
def test_a_bad_line_is_named_by_file_and_line_at_preflight(tmp_path, line, message):
    _write(tmp_path / "data.jsonl", [ALPACA[0], "", line])
    with pytest.raises(ConfigError, match=message):
        _source(tmp_path, paths=["data.jsonl"]).plan()


def test_format_option_enforces_one_kind_and_missing_files_are_named(tmp_path):
    _write(tmp_path / "data.jsonl", [ALPACA[0], CHAT])
    with pytest.raises(ConfigError, match=r'data\.jsonl:2: missing "instruction"'):
        _source(tmp_path, paths=["data.jsonl"], format="alpaca").plan()
    with pytest.raises(ConfigError, match=r"data\.options\.paths\[1\]: no such file"):
        _source(tmp_path, paths=["data.jsonl", "nope.jsonl"]).plan()
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ConfigError, match="hold no record"):
        _source(tmp_path, paths=["empty.jsonl"]).plan()
