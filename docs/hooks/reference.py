"""MkDocs hook: the reference pages generated from the code, so they cannot drift from it.

``<!-- qslm:components -->`` becomes every built-in component, kind by kind, with its summary,
its own docstring and an options table made from the rows ``qslm describe`` prints
(:func:`qslm.describe.options_table`); ``<!-- qslm:options MODULE:CLASS -->`` becomes the
table of one options model (``[select]``, ``[train.select_modules]``). Before any page is
rendered, the ``qslm`` group loads the commands plugins add (``qslm solve``, ``qslm bench``),
so mkdocs-click, which reads a group's ``commands`` directly, documents them too.
tests/core/test_docs.py imports this file to check the output against ``qslm describe``.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

# markers stand alone on their line (a page may mention them in running text)
COMPONENTS_MARKER = re.compile(r"^<!-- qslm:components -->$", re.M)
OPTIONS_MARKER = re.compile(r"^<!-- qslm:options ([\w.]+):(\w+) -->$", re.M)

# kind -> page heading, in the order a pipeline uses them
KIND_TITLES = {
    "data_source": "Data sources",
    "attention": "Attention backends",
    "qubo_solver": "QUBO solvers",
    "trainer": "Trainers",
    "evaluator": "Evaluators",
    "tracker": "Trackers",
}
# where each kind's table lives in pipeline.toml
KIND_TABLES = {
    "data_source": '[data] source = "{name}", options in [data.options]',
    "attention": '[attention] backend = "{name}", options in [attention.options]',
    "qubo_solver": 'solver = "{name}", options in [select.solvers."{name}"]',
    "trainer": '[train] trainer = "{name}", options in [train.options]',
    "evaluator": 'options in [evaluate."{name}"]',
    "tracker": '[track] backend = "{name}", options in [track.options]',
}


def builtin_components() -> list[Any]:
    """Every component qslm-core registers (no entry points: what is installed beside the core
    does not change the core's reference)."""
    from qslm.plugins import collect, make_plugin_manager

    pm, registry = make_plugin_manager(entry_points=False)
    collect(pm, registry)
    return [spec for spec in registry.all() if spec.distribution == "qslm-core"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def options_markdown(options_model: type) -> list[str]:
    """The options table of one model, as Markdown (the rows of ``qslm describe``)."""
    from qslm.describe import options_table

    rows = options_table(options_model)
    if not rows:
        return ["No options."]
    lines = ["| option | type | default | description |", "|---|---|---|---|"]
    for row in rows:
        # Python-Markdown's tables do not split cells on a pipe inside a code span
        lines.append(
            f"| `{row['name']}` | `{row['type']}` | `{row['default']}` | "
            f"{_cell(row['description'])} |"
        )
    return lines


def component_markdown(spec: Any, cls: type) -> list[str]:
    """One component's section: heading, where it goes in pipeline.toml, summary, docstring,
    options."""
    from qslm.describe import own_doc

    lines = [f"### `{spec.name}`", ""]
    lines += [f"`{KIND_TABLES[spec.kind].format(name=spec.name)}`", ""]
    if spec.summary:
        lines += [spec.summary, ""]
    doc = own_doc(cls)
    if doc and doc != spec.summary:
        lines += [doc, ""]
    return [*lines, *options_markdown(cls.Options), ""]


def components_markdown() -> str:
    """Every built-in component, grouped by kind."""
    specs = builtin_components()
    lines: list[str] = []
    for kind, title in KIND_TITLES.items():
        lines += [f"## {title}", ""]
        for spec in (s for s in specs if s.kind == kind):
            lines += component_markdown(spec, spec.load())
    return "\n".join(lines)


def _options_for(match: re.Match[str]) -> str:
    model = getattr(importlib.import_module(match[1]), match[2])
    return "\n".join(options_markdown(model))


def load_plugin_commands() -> None:
    """Make the ``qslm`` group hold the commands plugins register, as ``qslm --help`` shows."""
    import click

    from qslm.cli import cli

    cli.list_commands(click.Context(cli))


def on_config(config: Any) -> Any:
    load_plugin_commands()
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if COMPONENTS_MARKER.search(markdown):
        markdown = COMPONENTS_MARKER.sub(lambda _: components_markdown(), markdown)
    return OPTIONS_MARKER.sub(_options_for, markdown)
