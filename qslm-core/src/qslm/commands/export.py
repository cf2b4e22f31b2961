"""``qslm export``. Importing this module imports click only; the export's libraries (torch,
transformers, peft, the converter) are imported inside the command."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import click


def _progress(message: str) -> None:
    click.echo(message, err=True)


def export_build(
    build: str,
    fmt: str,
    *,
    out: Path | None = None,
    force: bool = False,
    outtype: str = "f16",
    llama_cpp: str | None = None,
    builds: Path = Path("builds"),
) -> Path:
    """Export ``build`` (a folder or NAME@vN) as ``fmt`` into ``out``; returns the folder."""
    from qslm import __version__
    from qslm.export.output import check_target, staged, write_manifest
    from qslm.export.source import resolve_source

    source = resolve_source(build, builds)
    name = f"{source.manifest.get('name') or source.path.parent.name}-{source.path.name}"
    out = out or Path("exports") / f"{name}-{fmt}"
    check_target(out, force)  # before any slow work
    converter = None
    if fmt == "gguf":
        from qslm.export.converter import find_converter

        converter = find_converter(llama_cpp, _progress)
    started = time.perf_counter()
    with staged(out, force) as folder:
        record: dict[str, Any] = {
            "qslm_export": 1,
            "format": fmt,
            "source": {"build": str(source.path.resolve()), "label": source.label,
                       "kind": source.kind, "created": source.manifest.get("created")},
            "qslm_version": __version__,
        }  # fmt: skip
        if fmt == "merged":
            from qslm.export.merged import write_merged

            chat = write_merged(source, folder, _progress)
            record["chat_template"] = chat.origin
            record["stop"] = chat.stop
            record["converter"] = _merge_tool(source)
        else:
            from qslm.export.gguf import write_gguf

            assert converter is not None
            record["gguf"] = write_gguf(
                source, folder, outtype=outtype, converter=converter, progress=_progress
            )
            record["converter"] = {"name": "llama.cpp convert_hf_to_gguf.py",
                                   **converter.provenance}  # fmt: skip
        record["seconds"] = round(time.perf_counter() - started, 2)
        record["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        write_manifest(folder, record)
    return out


def _merge_tool(source: Any) -> dict[str, Any]:
    from importlib import metadata

    if source.kind == "full":
        return {"name": "copy of the build's model folder"}
    return {"name": "peft merge_and_unload", "peft": metadata.version("peft"),
            "transformers": metadata.version("transformers")}  # fmt: skip


@click.command("export")
@click.argument("build")
@click.option(
    "--format", "fmt", type=click.Choice(["merged", "gguf"]), required=True,
    help="merged: one transformers folder (adapter merged into its base); gguf: llama.cpp/Ollama.",
)  # fmt: skip
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Folder to write (default: exports/NAME-vN-FORMAT).",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option(
    "--outtype", type=click.Choice(["f16", "q8_0", "bf16", "f32"]), default="f16",
    show_default=True, help="GGUF weight type (the converter's own quantisation).",
)  # fmt: skip
@click.option(
    "--llama-cpp", "llama_cpp", default=None, metavar="DIR",
    help="A llama.cpp source folder to convert with (default: the one vendored in the "
    "llama-cpp-python sdist, fetched once; env QSLM_LLAMA_CPP).",
)  # fmt: skip
@click.option(
    "--output", "-o", type=click.Path(file_okay=False), default=None,
    help="Folder holding the builds, for NAME@vN (default: ./builds).",
)  # fmt: skip
def export_command(
    build: str,
    fmt: str,
    out: Path | None,
    force: bool,
    outtype: str,
    llama_cpp: str | None,
    output: str | None,
) -> None:
    """Export BUILD (a folder, or NAME@vN / NAME@current / NAME@latest) for other runtimes:
    a merged transformers folder, or a GGUF file with an Ollama Modelfile. Prints the folder."""
    folder = export_build(
        build, fmt, out=out, force=force, outtype=outtype, llama_cpp=llama_cpp,
        builds=Path(output or "builds"),
    )  # fmt: skip
    click.echo(str(folder))
    sys.stdout.flush()
