"""``qslm plugin new KIND NAME``: write a complete, installable plugin package (entry point,
component with an options model, a conformance test from the kit, a README) to start from.

The templates are package data read with importlib.resources and filled with
``string.Template``. Copier (or cookiecutter) would add a dependency to qslm-core for what is
three names substituted into a handful of files; its strength, updating a generated project
when the template changes, does not apply to a skeleton a plugin author then owns.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

import click

from qslm.errors import ConfigError

# kind -> (registration hook, words for the README, class suffix, pipeline.toml example)
KINDS = {
    "solver": (
        "qslm_register_qubo_solvers",
        "QUBO solver",
        "Solver",
        '[select]\nsize = 100\nsolver = "${name}"\n\n[select.solvers."${name}"]\nkeep = 4',
    ),
    "evaluator": (
        "qslm_register_evaluators",
        "evaluator",
        "Evaluator",
        '[evaluate."${name}"]\nmax_records = 500',
    ),
    "data-source": (
        "qslm_register_data_sources",
        "data source",
        "Source",
        '[data]\nsource = "${name}"\n[data.options]\npaths = ["notes.csv"]\ncolumn = "text"',
    ),
    "trainer": (
        "qslm_register_trainers",
        "trainer",
        "Trainer",
        '[train]\ntrainer = "${name}"\n[train.options]\nmax_steps = 200',
    ),
    "attention": (
        "qslm_register_attention_backends",
        "attention backend",
        "Attention",
        '[attention]\nbackend = "${name}"\n[attention.options]\ntemperature = 0.9',
    ),
}
# Extra runtime dependencies of the generated component (beyond qslm-core).
DEPENDENCIES = {"solver": ["numpy>=1.26"], "evaluator": ["transformers"], "attention": ["torch"]}
DEPENDENCIES["trainer"] = ["torch", "transformers", "tokenizers", "accelerate"]
# A component name as pipeline.toml writes it: lowercase words joined by ".", "-" or "_".
NAME = re.compile(r"^[a-z][a-z0-9]*(?:[._-][a-z0-9]+)*$")


@dataclass(frozen=True)
class Names:
    """The names a component name gives the package."""

    name: str  # the component, e.g. "acme.brute"
    plugin: str  # the entry point (the plugin's name), e.g. "acme-brute"
    dist: str  # "qslm-acme-brute"
    package: str  # "qslm_acme_brute"
    cls: str  # "AcmeBruteSolver"

    @classmethod
    def of(cls, name: str, kind: str) -> Names:
        if not NAME.match(name):
            raise ConfigError(
                f"NAME {name!r}: a component name is lowercase letters and digits in words "
                "joined by '.', '-' or '_', starting with a letter (e.g. acme.greedy); use "
                "a prefix of your own so that it does not clash with other plugins"
            )
        slug = re.sub(r"[._]", "-", name)
        words = slug.split("-")
        return cls(
            name=name,
            plugin=slug,
            dist=f"qslm-{slug}",
            package="qslm_" + "_".join(words),
            cls="".join(w.capitalize() for w in words) + KINDS[kind][2],
        )


def render(kind: str, names: Names) -> dict[str, str]:
    """``relative path -> text`` of every file of the package."""
    from qslm import __version__

    hook, words, _, usage = KINDS[kind]
    extra = "".join(f', "{d}"' for d in DEPENDENCIES.get(kind, []))
    values = {
        **vars(names),
        "hook": hook,
        "kind_words": words,
        "module": kind.replace("-", "_"),
        "summary": f"The {words} {names.name}",
        "core_version": __version__,
        "extra_dependencies": extra,
        "usage": Template(usage).substitute(name=names.name),
    }
    root = resources.files("qslm.commands") / "plugin_templates"

    def fill(folder: str, template: str) -> str:
        return Template((root / folder / template).read_text(encoding="utf-8")).substitute(values)

    src = f"src/{names.package}"
    return {
        "pyproject.toml": fill("common", "pyproject.toml.tmpl"),
        "README.md": fill("common", "README.md.tmpl"),
        f"{src}/__init__.py": fill("common", "__init__.py.tmpl"),
        f"{src}/plugin.py": fill("common", "plugin.py.tmpl"),
        f"{src}/{values['module']}.py": fill(kind, "component.py.tmpl"),
        f"tests/test_{values['module']}.py": fill(kind, "test_plugin.py.tmpl"),
    }


def write_package(kind: str, name: str, parent: Path) -> Path:
    """Write the package into ``parent/qslm-NAME``; refuses an existing folder. The files go
    to a temporary folder first, renamed into place when complete."""
    names = Names.of(name, kind)
    target = Path(parent) / names.dist
    if target.exists():
        raise ConfigError(f"{target}: already exists; remove it or choose --dir elsewhere")
    files = render(kind, names)
    Path(parent).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{names.dist}-", dir=parent))
    try:
        for rel, text in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        os.chmod(staging, 0o755)  # mkdtemp makes it private to the user
        os.rename(staging, target)  # fails if the target appeared meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


@click.group("plugin")
def plugin_group() -> None:
    """Write plugins: `qslm plugin new KIND NAME`."""


@plugin_group.command("new")
@click.argument("kind", type=click.Choice(sorted(KINDS)))
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Folder to write the package folder qslm-NAME into.",
)
def new_command(kind: str, name: str, parent: str) -> None:
    """Write an installable plugin package providing the KIND component NAME: pyproject with
    the entry point, the component and its options, a conformance test, a README."""
    target = write_package(kind, name, Path(parent))
    click.echo(target)
    click.echo(f"next: pip install -e '{target}[test]' && (cd {target} && pytest)", err=True)
