"""The built-in ``text`` data source."""

from __future__ import annotations

import pytest

from qslm.context import RunContext
from qslm.data.text import TextOptions, TextSource, clean_text, split_paragraphs
from qslm.errors import ConfigError


def _ctx(tmp_path, seed=0):
    return RunContext(config=None, registry=None, build_dir=tmp_path, seed=seed)


def test_cleaning_and_paragraphs():
    text = "Hello\x00  world\r\nsame   para\x07\n\n\n  Next\u00a0one \n"
    assert split_paragraphs(clean_text(text)) == ["Hello world same para", "Next one"]


def test_glob_folder_dedup_and_split_are_deterministic(tmp_path):
    (tmp_path / "docs").mkdir()
    paras = [f"Paragraph number {i} about annealing." for i in range(40)]
    (tmp_path / "docs" / "a.md").write_text("\n\n".join(paras[:25]))
    (tmp_path / "docs" / "b.txt").write_text("\n\n".join(paras[20:]))  # 5 duplicates
    (tmp_path / "docs" / "skip.csv").write_text("not,read")
    source = TextSource(TextOptions(paths=["docs"], validation_fraction=0.25), base_dir=tmp_path)
    data = source.load(_ctx(tmp_path, seed=1))
    assert data.info["duplicates_dropped"] == 5
    assert len(data.train) + len(data.validation) == 40
    assert len(data.validation) == 10
    texts = {r["text"] for r in data.train} | {r["text"] for r in data.validation}
    assert texts == set(paras)

    again = source.load(_ctx(tmp_path, seed=1))
    assert again.validation == data.validation and again.sha256 == data.sha256
    other = source.load(_ctx(tmp_path, seed=2))
    assert other.validation != data.validation and other.sha256 == data.sha256

    glob_source = TextSource(TextOptions(paths=["docs/*.md"]), base_dir=tmp_path)
    assert len(glob_source.files()) == 1


def test_hash_changes_with_content(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\ntwo\n")
    source = TextSource(TextOptions(paths=["a.txt"]), base_dir=tmp_path)
    first = source.load(_ctx(tmp_path)).sha256
    (tmp_path / "a.txt").write_text("one\n\ntwo!\n")
    assert source.load(_ctx(tmp_path)).sha256 != first


def test_non_utf8_file_names_the_file(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    source = TextSource(TextOptions(paths=["latin1.txt"]), base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"latin1.txt: not UTF-8"):
        source.load(_ctx(tmp_path))
