"""Test sessions: the core alone, the core with each backend, end to end, and lint.

Run all with ``nox``; one with ``nox -s core``; pass pytest arguments after ``--``.
Installs are pinned by ``constraints.txt`` (torch 2.13.0, a CPU build) unless PIP_CONSTRAINT
is set.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = os.environ.get("PIP_CONSTRAINT") or str(ROOT / "constraints.txt")
BACKENDS = {
    "dwave": "qslm-backend-dwave",
    "qiskit": "qslm-backend-qiskit",
    "azure": "qslm-backend-azure",
    "unsloth": "qslm-unsloth",
    "exact": "qslm-solver-exact",
    "openjij": "qslm-solver-openjij",
}
ALL_PLUGINS = list(BACKENDS.values())
EXTRAS = {"qiskit": "[ibm]"}  # fake IBM backends, used offline by the tests, come with the extra
# Backends built on another qslm package (not on PyPI, so installed from its folder alongside).
DEPENDS = {"azure": ["qslm-backend-qiskit"]}
# Unsloth's own metadata pulls xformers/triton/torchvision, which would replace the CPU torch:
# installed without its dependencies, as qslm-unsloth's README says for CPU-only machines (the
# light ones it needs come with qslm-unsloth).
NO_DEPS = {"unsloth": ["unsloth==2026.10.9", "unsloth_zoo==2026.10.9"]}

# uv installs in seconds what pip takes a minute or more for (seven sessions, each with torch and
# transformers); nox falls back to venv + pip where uv is not installed.
nox.options.default_venv_backend = "uv|venv"
nox.options.reuse_existing_virtualenvs = True

# The core and e2e suites are most of CI's time and most of their tests wait on a subprocess, a
# server or one torch thread: pytest-xdist runs them on every core. By file, so that a module's
# expensive fixture (a training run, an mlflow server) is built once, in one worker.
PARALLEL = ("pytest-xdist==3.8.0",)
PARALLEL_BACKENDS = {"qiskit", "azure", "unsloth"}
PARALLEL_ARGS = ("-n", os.environ.get("QSLM_TEST_WORKERS", "auto"), "--dist", "loadfile")


def install(session: nox.Session, *args: str) -> None:
    session.install("-c", CONSTRAINTS, *args)


def assert_not_installed(session: nox.Session, dists: list[str]) -> None:
    code = (
        "import importlib.metadata as m, sys\n"
        "names = {x.metadata['Name'] for x in m.distributions()}\n"
        f"found = [d for d in {dists!r} if d in names]\n"
        "sys.exit(f'installed but must not be: {found}' if found else 0)\n"
    )
    session.run("python", "-c", code)


@nox.session
def core(session: nox.Session) -> None:
    """qslm-core alone (with all its extras; httpx as the test client, dimod and scikit-learn to
    check conversions against, hypothesis for the fuzzing): proves no backend is installed,
    then runs tests/core."""
    install(session, "torch==2.13.0")
    install(
        session, "./qslm-core[all]", "pytest", "httpx", "dimod", "scikit-learn", "hypothesis",
        *PARALLEL,
    )  # fmt: skip
    # The official OpenAI client drives `qslm serve` in the tests; Schemathesis fuzzes its schema.
    install(session, "openai==3.57.0", "schemathesis==4.32.5")
    assert_not_installed(session, ALL_PLUGINS)
    session.run("pytest", "tests/core", *PARALLEL_ARGS, "--durations=15", *session.posargs)


@nox.session(default=False)
def fuzz(session: nox.Session) -> None:
    """The Hypothesis properties of tests/core/test_fuzz.py with the long profile (20 times
    the core session's examples; nightly-style, not part of a plain `nox`)."""
    install(session, "torch==2.13.0")
    install(session, "./qslm-core", "pytest", "hypothesis")
    session.run(
        "pytest", "tests/core/test_fuzz.py", *session.posargs, env={"QSLM_FUZZ_PROFILE": "long"}
    )


@nox.session
@nox.parametrize("backend", list(BACKENDS))
def backend(session: nox.Session, backend: str) -> None:
    """qslm-core plus one backend package (and the qslm packages it builds on, DEPENDS),
    nothing else of qslm; runs tests/<backend>."""
    install(session, "torch==2.13.0")
    needed = DEPENDS.get(backend, [])
    install(
        session,
        "./qslm-core",
        *(f"./{dist}" for dist in needed),
        f"./{BACKENDS[backend]}{EXTRAS.get(backend, '')}",
        "pytest",
    )
    if backend in NO_DEPS:
        install(session, "--no-deps", *NO_DEPS[backend])
    allowed = {BACKENDS[backend], *needed}
    assert_not_installed(session, [d for d in ALL_PLUGINS if d not in allowed])
    # the suites of a minute or more (training, simulated circuits) on every core too
    parallel = PARALLEL_ARGS if backend in PARALLEL_BACKENDS else ()
    if parallel:
        install(session, *PARALLEL)
    session.run("pytest", f"tests/{backend}", *parallel, *session.posargs)


@nox.session
def e2e(session: nox.Session) -> None:
    """End to end: the quickstart, the thesis-qa example (QLoRA, hence the qlora extra), builds,
    resume after SIGKILL, --nproc, the CLI contracts and third-party plugins."""
    install(session, "torch==2.13.0")
    # pip itself: the tests pip-install example plugins the way a user does (uv venvs have none);
    # hatchling: the `qslm plugin new` packages are built without fetching it four times.
    install(session, "./qslm-core[qlora]", "pytest", "pip", "hatchling", *PARALLEL)
    session.run("pytest", "tests/e2e", *PARALLEL_ARGS, "--durations=10", *session.posargs)


@nox.session(default=False)
def trackers(session: nox.Session) -> None:
    """Opt-in: the W&B (offline) and trackio trackers, not in qslm-core[all] (their installs
    would put the core session over its time budget); runs tests/core/test_tracking_hf.py."""
    install(session, "torch==2.13.0")
    install(session, "./qslm-core[wandb,trackio,tensorboard]", "pytest")
    session.run("pytest", "tests/core/test_tracking_hf.py", *session.posargs)


@nox.session
def export(session: nox.Session) -> None:
    """qslm export --format gguf checked in llama-cpp-python, which pip builds from source
    (llama.cpp: minutes the first time, then pip's cached wheel); tests/core/test_export_gguf.py."""
    install(session, "torch==2.13.0")
    # the multimodal library (tools/mtmd, 51 of the 178 objects) is not needed to load a GGUF
    session.env.setdefault("CMAKE_ARGS", "-DLLAVA_BUILD=OFF")
    # pip: the first GGUF export fetches the converter with `pip download` (uv venvs have no pip)
    install(session, "./qslm-core[gguf,qlora]", "pytest", "pip", "llama-cpp-python")
    session.run("pytest", "tests/core/test_export_gguf.py", *session.posargs)


DOCS_PACKAGES = ["mkdocs", "mkdocs-material", "mkdocstrings-python", "mkdocs-click"]


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site: mkdocs build --strict (a broken link, a missing reference or a
    warning fails), then tests/core/test_docs.py, which checks it against the code (its CLI
    test needs mkdocs-click, installed only here). No torch: the site imports none."""
    install(session, "./qslm-core", "pytest", *DOCS_PACKAGES)
    session.run("python", "-m", "mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})
    session.run("pytest", "tests/core/test_docs.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree; lint-imports checks the import
    rules of qslm-core (docs/architecture.md, contracts in pyproject.toml)."""
    session.install("ruff", "import-linter")
    # lint-imports reads the installed trees (static analysis: no dependency is needed)
    editable = [arg for p in ["qslm-core", *ALL_PLUGINS] for arg in ("-e", f"./{p}")]
    session.install("--no-deps", *editable)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports", "--no-cache")
