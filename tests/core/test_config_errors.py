"""The error contract: every bad configuration gets one clear message, the right exit code
(2 for configuration, 1 for runtime) and no traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from qslm.cli import cli

GOOD = """
[pipeline]
name = "demo"
seed = 7

[data]
source = "text"
[data.options]
paths = ["corpus.txt"]

[train]
trainer = "scratch"
[train.options]
max_steps = 2
"""


@pytest.fixture
def project(tmp_path: Path, clean_env) -> Path:
    (tmp_path / "corpus.txt").write_text("First paragraph.\n\nSecond one.\n\nThird.\n")
    (tmp_path / "pipeline.toml").write_text(GOOD)
    return tmp_path


def validate(path: Path, *args: str):
    return CliRunner().invoke(cli, ["validate", str(path), *args])


def assert_error(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_good_pipeline_validates(project):
    result = validate(project / "pipeline.toml")
    assert result.exit_code == 0, result.output
    assert "demo" in result.output and "scratch" in result.output and "ok" in result.output


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (
            's/max_steps = 2/learning_rate = "fast"/',
            ['pipeline.toml: train.options.learning_rate: expected a number, got "fast"'],
        ),
        (
            "s/max_steps = 2/max_stepz = 2/",
            ["train.options.max_stepz: unknown key; did you mean 'max_steps'?"],
        ),
        (
            's/trainer = "scratch"/trainer = "scrach"/',
            ["train.trainer: unknown trainer 'scrach'; did you mean 'scratch'?"],
        ),
        (
            's/trainer = "scratch"/trainer = "unsloth"/',
            ["train.trainer: unknown trainer 'unsloth'", "pip install qslm-unsloth"],
        ),
        ("s/seed = 7/seed = 7.5/", ["pipeline.seed: expected an integer, got 7.5"]),
        ("s/seed = 7/sed = 7/", ["pipeline.sed: unknown key; did you mean 'seed'?"]),
        ('s/name = "demo"//', ["pipeline.name: required key is missing"]),
        ('s/name = "demo"/name = "bad name!"/', ["pipeline.name: string should match pattern"]),
        ("s/^\\[train\\]$/[trian]/", ["trian: unknown key; did you mean 'train'?"]),
        ('s/paths = .*/paths = "corpus.txt"/', ["data.options.paths: expected a list"]),
    ],
)
def test_bad_configuration_exits_2_with_key_path(project, edit, fragments):
    import re

    pattern, repl = edit[2:-1].split("/", 1)
    text = (project / "pipeline.toml").read_text()
    lines = [re.sub(pattern, repl, line) for line in text.splitlines()]
    (project / "pipeline.toml").write_text("\n".join(lines) + "\n")
    assert_error(validate(project / "pipeline.toml"), 2, *fragments)


def test_toml_syntax_error_shows_line_and_column(project):
    (project / "pipeline.toml").write_text('[pipeline]\nname = "x"\nseed = = 3\n')
    assert_error(validate(project / "pipeline.toml"), 2, "TOML syntax error", "line 3")


def test_missing_pipeline_file(project):
    assert_error(validate(project / "nope.toml"), 2, "nope.toml: no such file")


def test_missing_data_file(project):
    (project / "corpus.txt").unlink()
    assert_error(
        validate(project / "pipeline.toml"), 2, "data.options.paths[0]", "no such file or folder"
    )


def test_glob_matching_nothing(project):
    assert_error(
        validate(project / "pipeline.toml", "--set", 'data.options.paths=["*.md"]'),
        2,
        "data.options.paths[0]",
        "matches no file",
    )


def test_empty_corpus_is_refused(project):
    (project / "corpus.txt").write_text("")
    assert_error(validate(project / "pipeline.toml"), 2, "data.options.paths", "empty")
    (project / "corpus.txt").write_text("\x00\x01\n\n   \n")
    result = CliRunner().invoke(
        cli, ["run", str(project / "pipeline.toml"), "--output", str(project / "out")]
    )
    assert_error(result, 2, "data.options.paths: no text found")
    assert not list((project / "out" / "demo").glob("v*"))


def test_all_problems_are_reported_at_once(project):
    result = validate(
        project / "pipeline.toml",
        "--set",
        "train.options.bogus=1",
        "--set",
        "data.options.bogus=1",
        "--set",
        "evaluate.perplexty.x=1",
    )
    assert_error(
        result,
        2,
        "train.options.bogus",
        "data.options.bogus",
        "evaluate.perplexty: unknown evaluator",
    )


def test_set_overrides_are_typed_and_checked(project):
    assert_error(validate(project / "pipeline.toml", "--set", "novalue"), 2, "expected KEY=VALUE")
    assert_error(
        validate(project / "pipeline.toml", "--set", "pipeline.name.x=1"),
        2,
        "pipeline.name is not a table",
    )
    assert validate(project / "pipeline.toml", "--set", "pipeline.seed=3").exit_code == 0
    assert_error(
        validate(project / "pipeline.toml", "--set", "a..b=1"), 2, "is not a dotted TOML key"
    )


def test_set_takes_quoted_keys_with_dots():
    from qslm.config import parse_override

    assert parse_override('select.solvers."dwave.sa".seed=3') == (
        ["select", "solvers", "dwave.sa", "seed"],
        3,
    )
    assert parse_override("train.options.name=plain words") == (
        ["train", "options", "name"],
        "plain words",
    )


def test_output_folder_not_writable(project):
    if os.geteuid() == 0:
        target = project / "file-in-the-way"
        target.write_text("a file, not a folder")
        output = target / "sub"
    else:
        output = project / "ro"
        output.mkdir()
        output.chmod(0o500)
    result = CliRunner().invoke(
        cli, ["run", str(project / "pipeline.toml"), "--output", str(output)]
    )
    assert_error(result, 2, "is not writable")
