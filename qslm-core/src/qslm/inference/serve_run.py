"""``qslm serve``'s start-up: resolve and load the builds, size torch's threads, configure
uvicorn's limits (connections, timeouts) and run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from qslm.errors import QslmError


def uvicorn_config(
    app: object,
    host: str,
    port: int,
    *,
    max_connections: int,
    timeouts: tuple[float, float, float],
    log_level: str = "info",
) -> object:
    """uvicorn's configuration for ``app``: at most ``max_connections`` open (more get 503),
    the header deadline of :func:`~qslm.inference.limits.header_timeout_protocol` and the
    keep-alive timeout. The body timeout is the app's (its guard middleware)."""
    import uvicorn

    from qslm.inference.limits import header_timeout_protocol

    headers_s, _, keep_alive_s = timeouts
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=header_timeout_protocol(headers_s),
        limit_concurrency=max_connections,
        timeout_keep_alive=max(1, round(keep_alive_s)),
    )


def serve(
    specs: list[str],
    output: Path,
    *,
    host: str,
    port: int,
    max_concurrency: int,
    batching: bool,
    max_batch: int | None,
    load: str,
    torch_threads: int | None,
    cache_size: int,
    max_prompt_chars: int,
    max_connections: int,
    timeouts: tuple[float, float, float],
) -> None:
    """Run ``qslm serve`` until interrupted."""
    if any(t <= 0 for t in timeouts):
        raise QslmError(f"--timeout: every value must be positive, got {timeouts}")
    from qslm.inference.served import ServedBuilds, resolve_specs

    paths = resolve_specs(specs, output)
    import torch
    import uvicorn

    from qslm.inference.server import ServeSettings, create_app, torch_threads_for
    from qslm.resources import usable_cpus

    settings = ServeSettings(
        max_concurrency=max_concurrency,
        cache_size=cache_size,
        max_prompt_chars=max_prompt_chars,
        api_key=os.environ.get("QSLM_API_KEY") or None,
        batching=batching,
        max_batch=max_batch,
        body_timeout_s=timeouts[1],
    )
    size, workers = settings.batcher_shape()
    # On a machine shared with other jobs, fewer threads than cores can be much faster: an op
    # split over 2 threads waits for whichever was preempted (docs/how-to/serving.md, "Measured").
    torch.set_num_threads(torch_threads or torch_threads_for(workers, usable_cpus()))
    for path in paths:
        click.echo(f"{'loading' if load == 'eager' else 'serving'} {path} ...", err=True)
    served = ServedBuilds(paths, max_batch=size, workers=workers, eager=load == "eager")
    app = create_app(served, settings)
    auth = "API key required" if settings.api_key else "no API key (QSLM_API_KEY unset)"
    how = f"batches of up to {size}" if batching else "no batching"
    models = ", ".join(b.id for b in served.builds)
    click.echo(
        f"serving {models} on http://{host}:{port} ({auth}; {max_concurrency} at once, {how}, "
        f"torch threads {torch.get_num_threads()})",
        err=True,
    )
    config = uvicorn_config(app, host, port, max_connections=max_connections, timeouts=timeouts)
    try:
        uvicorn.Server(config).run()
    except OSError as exc:
        raise QslmError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sys.stdout.flush()
