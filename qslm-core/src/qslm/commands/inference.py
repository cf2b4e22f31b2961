"""``qslm generate``, ``qslm chat``, ``qslm serve`` and ``qslm report``.

Importing this module imports click only; torch, transformers, FastAPI and matplotlib are
imported inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from qslm.errors import ConfigError, QslmError
from qslm.inference.chat import chat_prompt

_output_option = click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder holding the builds, for NAME@vN (default: ./builds).",
)


def _sampling_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option("--max-new-tokens", default=64, show_default=True, type=int),
            click.option(
                "--temperature", default=0.8, show_default=True, type=float, help="0 = greedy."
            ),
            click.option("--top-k", default=50, show_default=True, type=int, help="0 = off."),
            click.option("--top-p", default=1.0, show_default=True, type=float, help="1 = off."),
            click.option("--seed", default=None, type=int, help="Fix the draw (reproducible)."),
        ]
    ):
        func = option(func)
    return func


def _resolve(build: str, output: str | None) -> Path:
    from qslm.builds import resolve_build

    return resolve_build(build, Path(output or "builds"))


def _params(max_new_tokens: int, temperature: float, top_k: int, top_p: float, seed: int | None):
    from qslm.inference.generation import GenerationParams

    params = GenerationParams(max_new_tokens, temperature, top_k, top_p, seed)
    params.check()
    return params


def _load(path: Path):
    from qslm.inference.load import load_build

    click.echo(f"loading {path} ...", err=True)
    return load_build(path)


@click.command("generate")
@click.argument("build")
@click.argument("prompt")
@_sampling_options
@_output_option
def generate_command(
    build: str,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    seed: int | None,
    output: str | None,
) -> None:
    """Continue PROMPT with BUILD (a folder, or NAME@vN / NAME@current / NAME@latest),
    streaming the text as it is generated."""
    params = _params(max_new_tokens, temperature, top_k, top_p, seed)
    if not prompt.strip():
        raise ConfigError("PROMPT is empty")
    loaded = _load(_resolve(build, output))
    from transformers import TextStreamer

    from qslm.inference.generation import generate

    click.echo(prompt, nl=False)
    streamer = TextStreamer(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)
    result = generate(loaded.model, loaded.tokenizer, prompt, params, streamer=streamer)
    click.echo(f"[{result.tokens} tokens]", err=True)


@click.command("chat")
@click.argument("build")
@_sampling_options
@_output_option
def chat_command(
    build: str,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    seed: int | None,
    output: str | None,
) -> None:
    """Talk with BUILD: one line a turn; /exit or end of input (Ctrl-D) ends it."""
    params = _params(max_new_tokens, temperature, top_k, top_p, seed)
    loaded = _load(_resolve(build, output))
    from transformers import TextStreamer

    from qslm.inference.generation import generate, prompt_length

    tok = loaded.tokenizer
    how = "its chat template" if getattr(tok, "chat_template", None) else "a plain User/Assistant"
    click.echo(f"chatting with {loaded.label} ({how}); /exit or Ctrl-D ends", err=True)
    turns: list[dict[str, str]] = []
    while True:
        click.echo("you> ", nl=False)
        line = sys.stdin.readline()
        if not line or line.strip() == "/exit":
            click.echo("")
            return
        if not line.strip():
            continue
        turns.append({"role": "user", "content": line.strip()})
        prompt, stops = chat_prompt(tok, turns)
        # Drop the oldest turns until prompt and answer fit in the model's context.
        before = len(turns)
        while loaded.context_length and len(turns) > 1:
            if prompt_length(tok, prompt) + params.max_new_tokens <= loaded.context_length:
                break
            turns = turns[2:] if len(turns) > 2 else turns[-1:]
            prompt, stops = chat_prompt(tok, turns)
        if len(turns) < before:
            click.echo(f"(dropped the {before - len(turns)} oldest turns to fit)", err=True)
        n = prompt_length(tok, prompt)
        if loaded.context_length and n + params.max_new_tokens > loaded.context_length:
            click.echo(
                f"that message is too long: {n} tokens + --max-new-tokens "
                f"{params.max_new_tokens} > the model's context of {loaded.context_length}",
                err=True,
            )
            turns.pop()
            continue
        click.echo("bot> ", nl=False)
        streamer = TextStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        result = generate(loaded.model, tok, prompt, params, streamer=streamer, stop_strings=stops)
        answer = result.text
        for stop in stops or []:
            answer = answer.split(stop)[0]
        turns.append({"role": "assistant", "content": answer.strip()})


@click.command("serve")
@click.argument("builds", nargs=-1, required=True, metavar="BUILD [BUILD ...]")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--max-concurrency",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Generations at once, all builds together; more get 429 at once.",
)
@click.option(
    "--batching/--no-batching",
    default=True,
    show_default=True,
    help="Decode waiting requests together in one forward pass (off: one at a time each).",
)
@click.option(
    "--max-batch",
    default=None,
    type=click.IntRange(1, 256),
    help="Most requests in one batch (default: --max-concurrency).",
)
@click.option(
    "--load",
    type=click.Choice(["eager", "lazy"]),
    default="eager",
    show_default=True,
    help="Load every build at start, or each on its first request.",
)
@click.option(
    "--torch-threads",
    default=None,
    type=click.IntRange(1),
    help="torch intra-op threads (default: the usable CPUs / the generating threads).",
)
@click.option(
    "--cache-size",
    default=256,
    show_default=True,
    type=click.IntRange(0),
    help="LRU entries for deterministic POST /v1/generate requests; 0 = off.",
)
@click.option(
    "--max-prompt-chars",
    default=4000,
    show_default=True,
    type=click.IntRange(1),
    help="Longer prompts are refused; the body limit is 4 bytes a character plus 4 KiB.",
)
@click.option(
    "--max-connections",
    default=256,
    show_default=True,
    type=click.IntRange(1),
    help="Open connections at once; more get 503 from uvicorn.",
)
@click.option(
    "--timeout",
    "timeouts",
    default=(10.0, 30.0, 5.0),
    show_default=True,
    type=(float, float, float),
    metavar="HEADERS BODY KEEPALIVE",
    help="Seconds for a request's headers, for its body, and idle keep-alive.",
)
@_output_option
def serve_command(builds: tuple[str, ...], output: str | None, **options: Any) -> None:
    """Serve BUILDs over HTTP with the OpenAI API (GET /v1/models, POST /v1/chat/completions,
    POST /v1/completions), POST /v1/generate, GET /health and GET /metrics.

    A BUILD is a folder, NAME@vN / NAME@current / NAME@latest (in --output), builds/NAME@vN
    (as the lora trainer's base_model), or a builds folder (each pipeline's current build).
    Set QSLM_API_KEY to require 'Authorization: Bearer KEY' or 'X-API-Key: KEY'.
    """
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise QslmError(
            f"qslm serve needs the serve extra ({exc.name} is missing): "
            "pip install 'qslm-core[serve]'"
        ) from None
    from qslm.inference.serve_run import serve

    serve(list(builds), Path(output or "builds"), **options)


@click.command("report")
@click.argument("build")
@_output_option
def report_command(build: str, output: str | None) -> None:
    """(Re)write BUILD's report.md and its plots, e.g. for a build made before reports."""
    from qslm.builds import read_manifest
    from qslm.report import write_report

    path = _resolve(build, output)
    report = write_report(path, read_manifest(path))
    click.echo(str(report))


COMMANDS = (generate_command, chat_command, serve_command, report_command)
