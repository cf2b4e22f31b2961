"""The documentation site stays in step with the code (datasette's rule: undocumented means
unfinished): every hook spec, built-in component and CLI command is in the docs, the
generated option tables say what ``qslm describe`` says, the plugin guide's example
components work, and no user-facing page points outside the repository."""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from qslm import hookspecs
from qslm.cli import cli
from qslm.context import RunContext

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _load_hook():
    spec = importlib.util.spec_from_file_location(
        "qslm_docs_reference", DOCS / "hooks/reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOK = _load_hook()
SPECS = HOOK.builtin_components()


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _split_row(line: str) -> list[str]:
    """Cells of a Markdown table row, split as Python-Markdown does: not on a pipe inside a
    code span or escaped with a backslash."""
    cells, cell, in_code, k = [], "", False, 0
    body = line.strip()[1:-1]
    while k < len(body):
        ch = body[k]
        if ch == "\\" and body[k + 1 : k + 2] == "|" and not in_code:
            cell, k = cell + "|", k + 2
            continue
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            cells.append(cell.strip())
            cell = ""
        else:
            cell += ch
        k += 1
    return [*cells, cell.strip()]


def _table_rows(lines: list[str]) -> list[tuple[str, ...]]:
    rows = [_split_row(line) for line in lines if line.startswith("| `")]
    # name, type and default are code spans; the description is Markdown as written
    return [(*(c[1:-1] for c in row[:3]), *row[3:]) for row in rows]


def _describe_rows(output: str) -> list[tuple[str, ...]]:
    """(name, type, default, description) per option from ``qslm describe``'s text."""
    rows: list[list[str]] = []
    for line in output.split("\noptions:\n", 1)[-1].splitlines():
        head = re.fullmatch(r"  (\w+) \((.*?), default (.*)\)", line)
        if head:
            rows.append([*head.groups(), ""])
        elif line.startswith("      ") and rows:
            rows[-1][3] = line.strip()
    return [tuple(r) for r in rows]


# -- hooks -----------------------------------------------------------------------------------


def test_every_hook_spec_is_on_the_hooks_page():
    page = _page("plugins/hooks.md")
    assert "::: qslm.hookspecs" in page
    specs = [
        n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("qslm_")
    ]
    assert len(specs) >= 7
    missing = [n for n in specs if not re.search(rf"^\s+- {n}$", page, re.M)]
    assert not missing, f"hook specs not rendered on docs/plugins/hooks.md: {missing}"


# -- components ------------------------------------------------------------------------------


def test_the_components_page_is_generated():
    page = _page("reference/components.md")
    assert HOOK.COMPONENTS_MARKER.search(page)
    assert "| option |" not in page, "option tables are generated, never written by hand"


def test_every_builtin_component_of_every_kind_is_generated():
    kinds = {s.kind for s in SPECS}
    assert kinds == set(HOOK.KIND_TITLES), kinds
    text = HOOK.components_markdown()
    missing = [f"{s.kind}:{s.name}" for s in SPECS if f"### `{s.name}`" not in text]
    assert not missing


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.kind}:{s.name}")
def test_generated_options_equal_qslm_describe(spec):
    result = CliRunner().invoke(cli, ["describe", spec.name, "--kind", spec.kind])
    assert result.exit_code == 0, result.output
    section = HOOK.component_markdown(spec, spec.load())
    assert _table_rows(section) == _describe_rows(result.output)
    # the summary and the class's own docstring, as describe prints them
    described = result.output.split("\noptions:")[0].split("\nno options")[0]
    for paragraph in described.split("\n\n")[1:]:
        assert paragraph.strip() in "\n".join(section), paragraph
    if spec.summary:
        assert spec.summary in section


def test_a_pipe_in_a_type_survives_the_table():
    from qslm.components import Options

    class Choice(Options):
        mode: str | None = None

    [row] = _table_rows(HOOK.options_markdown(Choice)[2:])
    assert row[:3] == ("mode", "str | None", "null")


@pytest.mark.parametrize(
    "target", ["qslm.stages.select:SelectOptions", "qslm.train.module_select:ModuleSelectOptions"]
)
def test_stage_options_are_generated(target):
    assert f"<!-- qslm:options {target} -->" in _page("reference/components.md")
    module, name = target.split(":")
    model = getattr(importlib.import_module(module), name)
    rows = _table_rows(HOOK.options_markdown(model))
    assert [r[0] for r in rows] == list(model.model_fields)


# -- CLI -------------------------------------------------------------------------------------


def _command_paths(group, prefix="qslm"):
    import click

    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # list_commands: plugin-added commands too
        command = group.get_command(ctx, name)
        yield f"{prefix} {name}"
        if isinstance(command, click.Group):
            yield from _command_paths(command, f"{prefix} {name}")


_RENDER_CLI = """
import importlib.util, sys
import mkdocs_click._docs as docs
spec = importlib.util.spec_from_file_location("hook", sys.argv[1])
hook = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hook)
hook.on_config(None)  # what mkdocs build does before any page
from qslm.cli import cli
lines = docs.make_command_docs(
    "qslm", cli, depth=int(sys.argv[2]), style="table", list_subcommands=True, has_attr_list=True
)
print("\\n".join(lines))
"""


def test_every_cli_command_is_in_the_cli_reference():
    import subprocess

    pytest.importorskip("mkdocs_click")  # the docs session has it
    page = _page("reference/cli.md")
    assert ":module: qslm.cli" in page and ":command: cli" in page
    assert "- attr_list" in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    depth = re.search(r":depth: (\d+)", page)[1]
    # a fresh process, as mkdocs build is: nothing has loaded the plugin commands yet
    rendered = subprocess.run(
        [sys.executable, "-c", _RENDER_CLI, str(DOCS / "hooks/reference.py"), depth],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    paths = list(_command_paths(cli))
    assert {"qslm solve", "qslm bench solvers", "qslm bench attention"} <= set(paths)
    # with attr_list, mkdocs-click titles each command by its full path
    headings = set(re.findall(r"^#+ (.+?) \{ #", rendered, re.M))
    missing = [p for p in paths if p not in headings]
    assert not missing, f"commands missing from the CLI reference: {missing}"


# -- the plugin guide's examples -------------------------------------------------------------


def _python_examples(page: str) -> list[str]:
    return re.findall(r"<!-- docs-test: python -->\n```python\n(.*?)```", _page(page), re.S)


def _exec(code: str) -> dict:
    namespace: dict = {"__name__": "docs_example"}
    exec(compile(code, "<docs example>", "exec"), namespace)
    return namespace


def test_the_example_data_source_loads_and_splits_deterministically(tmp_path):
    from qslm.config import validate_options
    from qslm.errors import ConfigError

    code = next(c for c in _python_examples("plugins/components.md") if "DataSource" in c)
    lines = _exec(code)["Lines"]
    (tmp_path / "notes.txt").write_text("one\n\ntwo\nthree\nfour\n", encoding="utf-8")
    options = validate_options(
        lines.Options,
        {"path": "notes.txt", "validation_fraction": 0.25},
        file="p.toml",
        prefix="data.options",
    )
    source = lines(options, base_dir=tmp_path)
    assert source.plan() == [f"lines from {tmp_path / 'notes.txt'}"]
    ctx = RunContext(config=None, registry=None, build_dir=tmp_path, seed=5)
    first, again = source.load(ctx), source.load(ctx)
    assert len(first.train) == 3 and len(first.validation) == 1
    assert (first.train, first.validation, first.sha256) == (
        again.train,
        again.validation,
        again.sha256,
    )
    missing = lines(
        validate_options(lines.Options, {"path": "gone.txt"}, file="p.toml", prefix=""),
        base_dir=tmp_path,
    )
    with pytest.raises(ConfigError, match=r"data\.options\.path"):
        missing.plan()


def test_the_example_attention_backend_equals_torch_attention():
    torch = pytest.importorskip("torch")
    code = next(c for c in _python_examples("plugins/components.md") if "AttentionBackend" in c)
    fn = _exec(code)["Softmax"]().function()
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 6, 8, generator=g)
    k, v = torch.randn(2, 2, 6, 8, generator=g), torch.randn(2, 2, 6, 8, generator=g)
    causal = torch.full((6, 6), float("-inf")).triu(1)[None, None]
    module = torch.nn.Module().eval()
    out, _ = fn(module, q, k, v, causal)
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), is_causal=True
    )
    assert out.shape == (2, 6, 4, 8)
    torch.testing.assert_close(out, expected.transpose(1, 2))


# -- pages a user reads ----------------------------------------------------------------------


def _user_facing() -> list[Path]:
    pages = [ROOT / "README.md", *DOCS.rglob("*.md"), *ROOT.glob("qslm-*/README.md")]
    return pages + [
        p for p in (ROOT / "examples").rglob("*") if p.suffix in {".md", ".toml", ".py"}
    ]


def test_no_user_facing_page_points_at_the_shared_folder():
    pattern = re.compile(r"\.\./shared|/work/shared|shared/benchmarks")
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in _user_facing()
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, f"user-facing docs that use ../shared: {found}"


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")]
    assert not [p for p in pages if f": {p}" not in nav]


def test_the_front_page_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines"


@pytest.mark.parametrize("name", ["plugin.py", "wordcount.py"])
def test_the_front_pages_plugin_is_the_tested_example(name):
    """The README's plugin is examples/wordcount-plugin (the e2e tests install it), line by
    line, only comments added."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(rf"```python\n# src/qslm_wordcount/{name}\n(.*?)```", readme, re.S)[1]
    example = ROOT / "examples/wordcount-plugin/src/qslm_wordcount" / name
    code = {line.rstrip() for line in example.read_text(encoding="utf-8").splitlines()}
    shown = [re.sub(r"  # .*$", "", line).rstrip() for line in block.splitlines()]
    assert not [line for line in shown if line not in code]


@pytest.mark.parametrize(
    "page", ["README.md", *(p.name + "/README.md" for p in ROOT.glob("qslm-*"))]
)
def test_front_page_links_resolve(page):
    """The front pages are read on GitHub and PyPI, outside the site's strict build."""
    text = (ROOT / page).read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    base = (ROOT / page).parent
    broken = [t for t in targets if "://" not in t and not (base / t).exists()]
    assert not broken, f"{page}: links to missing files: {broken}"


def test_the_front_pages_pipeline_is_valid(tmp_path):
    from qslm.config import load_pipeline
    from qslm.plugins import get_registry

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pipeline = re.search(r"## A pipeline\n\n```toml\n(.*?)```", readme, re.S)[1]
    (tmp_path / "notes").mkdir()
    paragraphs = [f"Paragraph {i} says something about annealing." for i in range(300)]
    (tmp_path / "notes" / "a.md").write_text("\n\n".join(paragraphs), encoding="utf-8")
    (tmp_path / "notes.toml").write_text(pipeline, encoding="utf-8")
    config = load_pipeline(tmp_path / "notes.toml", get_registry())
    assert config.select.size == 200
