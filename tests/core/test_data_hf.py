"""The ``hf`` data source on local files and saved datasets; the hub only as a clear error
offline (no test reaches the network)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest

from qslm.context import RunContext
from qslm.data.hf import HfOptions, HfSource
from qslm.errors import ConfigError

pytest.importorskip("datasets")

ROWS = [{"question": f"What is {i} + 1?", "answer": f"{i + 1}"} for i in range(20)]
MAPPING = {"instruction": "question", "output": "answer"}


def _ctx(tmp_path, seed=0):
    return RunContext(config=None, registry=None, build_dir=tmp_path, seed=seed)


def _source(tmp_path, **options):
    return HfSource(HfOptions(**options), base_dir=tmp_path)


def test_local_json_lines_with_a_column_mapping(tmp_path):
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS))
    source = _source(tmp_path, path="qa.jsonl", columns=MAPPING, validation_fraction=0.2)
    assert source.plan() == [f"json from {tmp_path / 'qa.jsonl'}, split 'train'"]
    data = source.load(_ctx(tmp_path, 1))
    assert len(data.train) == 16 and len(data.validation) == 4
    everything = {r["instruction"]: r["output"] for r in data.train + data.validation}
    assert everything == {r["question"]: r["answer"] for r in ROWS}
    assert all(r["text"].endswith(r["output"]) and r["input"] == "" for r in data.train)
    again = source.load(_ctx(tmp_path, 1))
    assert again.validation == data.validation and again.sha256 == data.sha256
    assert source.load(_ctx(tmp_path, 2)).validation != data.validation


def test_csv_and_parquet_and_text_files(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list(ROWS)
    ds.to_csv(str(tmp_path / "qa.csv"), index=False)
    ds.to_parquet(str(tmp_path / "qa.parquet"))
    (tmp_path / "lines.txt").write_text("first line of text\n\nsecond line of text\n")
    for name in ("qa.csv", "qa.parquet"):
        data = _source(tmp_path, path=name, columns=MAPPING, validation_fraction=0.0).load(
            _ctx(tmp_path)
        )
        assert [r["instruction"] for r in data.train] == [r["question"] for r in ROWS], name
    text = _source(tmp_path, path="lines.txt", validation_fraction=0.0).load(_ctx(tmp_path))
    assert text.train == [{"text": "first line of text"}, {"text": "second line of text"}]


def test_saved_dataset_with_its_own_validation_split(tmp_path):
    import datasets

    chat = [
        {
            "messages": [
                {"role": "user", "content": f"hi {i}"},
                {"role": "assistant", "content": "hello"},
            ]
        }
        for i in range(6)
    ]
    saved = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(chat[:4]),
            "test": datasets.Dataset.from_list(chat[4:]),
        }
    )
    saved.save_to_disk(str(tmp_path / "saved"))
    source = _source(tmp_path, path="saved", validation_split="test")
    assert source.plan()[0].startswith("disk from")
    data = source.load(_ctx(tmp_path))
    assert [r["messages"][0]["content"] for r in data.validation] == ["hi 4", "hi 5"]
    assert len(data.train) == 4 and data.info["splits"] == {"train": 4, "test": 2}
    limited = _source(tmp_path, path="saved", split="test", max_records=1, validation_fraction=0)
    assert len(limited.load(_ctx(tmp_path)).train) == 1
    with pytest.raises(
        ConfigError,
        match=r"data\.options\.split: the dataset has no split 'dev' \(it has test, train\)",
    ):
        _source(tmp_path, path="saved", split="dev").load(_ctx(tmp_path))


def test_a_bad_row_is_named_by_split_and_row(tmp_path):
    rows = [*ROWS[:3], {"question": "no answer here"}]
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(ConfigError, match=r'train row 3: missing "answer" \(mapped to output\)'):
        _source(tmp_path, path="qa.jsonl", columns=MAPPING).load(_ctx(tmp_path))


def test_hub_name_offline_is_a_clear_preflight_error(tmp_path, monkeypatch, no_network):
    import huggingface_hub.constants

    with pytest.raises(ConfigError, match="hub cannot be reached"):
        _source(tmp_path, path="someone/some-dataset").plan()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match=r"hub is switched off \(HF_HUB_OFFLINE\)"):
        _source(tmp_path, path="someone/some-dataset").plan()


def test_local_paths_that_are_wrong_fail_at_preflight(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.options\.path: no such file or folder"):
        _source(tmp_path, path="./missing.jsonl").plan()
    (tmp_path / "notes.docx").write_text("x")
    with pytest.raises(ConfigError, match=r"set data\.options\.loader"):
        _source(tmp_path, path="notes.docx").plan()
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.csv").write_text("a\n1\n")
    with pytest.raises(ConfigError, match="is not a folder written by save_to_disk"):
        _source(tmp_path, path="plain", loader="disk").plan()
    with pytest.raises(ConfigError, match=r"data\.options\.columns\.prompt: not a record field"):
        _source(tmp_path, path="plain", columns={"prompt": "a"}).plan()


def test_without_datasets_validate_gives_the_install_hint(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "datasets" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"pip install 'qslm-core\[datasets\]'"):
        _source(tmp_path, path="x.jsonl").plan()


def test_preflight_imports_neither_datasets_nor_torch(tmp_path):
    (tmp_path / "qa.jsonl").write_text(json.dumps(ROWS[0]))
    script = textwrap.dedent(f"""
        import sys
        from qslm.data.hf import HfOptions, HfSource
        HfSource(HfOptions(path="qa.jsonl"), base_dir={str(tmp_path)!r}).plan()
        heavy = [m for m in ("datasets", "torch", "transformers") if m in sys.modules]
        assert not heavy, heavy
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
