"""``qslm data PIPELINE.toml``: run only the data stage (and ``[select]``), to check the
records before paying for training. What axolotl calls ``preprocess``."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import click

SAMPLES = 3


@click.command("data")
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a pipeline key, e.g. --set data.options.on_error=skip (repeatable).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write every record as JSON Lines (with its split and provenance) to FILE.",
)
def data_command(pipeline: str, overrides: tuple[str, ...], out: str | None) -> None:
    """Run the data stage of PIPELINE (and its [select]) and show the records; trains nothing.

    Without --out: counts per file, skipped files and why, and a few sample records."""
    from qslm.config import load_pipeline
    from qslm.context import RunContext
    from qslm.errors import QslmError
    from qslm.plugins import get_registry

    registry = get_registry()
    config = load_pipeline(pipeline, registry, overrides=list(overrides))
    source = config.data.create()
    try:
        source.plan()
    except QslmError as exc:
        raise type(exc)(f"{config.path.name}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="qslm-data-") as scratch:
        ctx = RunContext(
            config=config, registry=registry, build_dir=Path(scratch), seed=config.seed
        )
        with ctx.stage("data"):
            data = source.load(ctx)
        selected = None
        if config.select is not None:
            from qslm.stages.select import run_select_stage

            with ctx.stage("select"):
                chosen = run_select_stage(ctx, config.select, data)
            selected = {id(r) for r in chosen.train}
    rows = [_row(r, "train", selected) for r in data.train]
    rows += [_row(r, "validation", None) for r in data.validation]
    if out is not None:
        _write_jsonl(Path(out), rows)
        click.echo(f"{len(rows)} records -> {out}")
        return
    _summary(data.info, rows, selected is not None)


def _row(record: dict[str, Any], split: str, selected: set[int] | None) -> dict[str, Any]:
    row = {"split": split, **record}
    if selected is not None:
        row["selected"] = id(record) in selected
    return row


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Written beside the target and renamed, so a failed run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def _summary(info: dict[str, Any], rows: list[dict[str, Any]], has_select: bool) -> None:
    splits = Counter(r["split"] for r in rows)
    line = f"{len(rows)} records: {splits['train']} train, {splits['validation']} validation"
    if has_select:
        line += f" ({sum(r.get('selected', False) for r in rows)} train records selected)"
    click.echo(line)
    per_file = Counter((r.get("source") or {}).get("file", "") for r in rows)
    for entry in info.get("files", []):
        name = entry.get("path", "")
        short = Path(name).name if Path(name).is_absolute() else name
        pages = f", {entry['pages']} page(s)" if entry.get("pages") else ""
        count = per_file.get(name) or per_file.get(short) or entry.get("paragraphs", "?")
        click.echo(f"  {short}: {count} record(s){pages}")
    for skipped in info.get("skipped", []):
        click.echo(f"  skipped {skipped['path']}: {skipped['message']}")
    for row in rows[:SAMPLES]:
        shown = {k: v for k, v in row.items() if k != "text"}
        click.echo("sample: " + json.dumps(shown, ensure_ascii=False)[:400])
