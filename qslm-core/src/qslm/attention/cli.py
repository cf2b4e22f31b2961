"""``qslm bench attention``. Only click is imported at start-up; torch loads in the command."""

from __future__ import annotations

import json

import click

from qslm.errors import ConfigError

STRATEGIES = ("naive", "stratified", "hybrid", "control_variate", "adaptive")


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ConfigError(f"{flag}: expected positive integers, got {text!r}")
    return values


@click.command("attention")
@click.option(
    "--strategies",
    default=",".join(STRATEGIES),
    show_default=True,
    help="Comma-separated sampling strategies.",
)
@click.option("--seq-lens", default="64,256,1024", show_default=True, help="Keys per row.")
@click.option("--samples", default="8,32,128", show_default=True, help="Samples per row, k.")
@click.option("--dim", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--heads", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--logit-scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Multiplies 1/sqrt(dim): larger gives peaked rows (small N_eff).",
)
@click.option(
    "--threads", default=1, show_default=True, type=click.IntRange(min=1), help="CPU threads."
)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG plot.")
def bench_attention(
    strategies: str,
    seq_lens: str,
    samples: str,
    dim: int,
    heads: int,
    repeats: int,
    seed: int,
    logit_scale: float,
    threads: int,
    as_json: bool,
    plot_path: str | None,
) -> None:
    """Relative error of sampled attention against k for each strategy, beside the naive
    theory sqrt((N_eff-1)/k), and time per call against exact attention (random Gaussian
    Q, K, V). Sampled attention computes every logit: its time is never a speed-up."""
    names = [s.strip() for s in strategies.split(",") if s.strip()]
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown:
        raise ConfigError(f"--strategies: unknown {unknown}; choose from {', '.join(STRATEGIES)}")
    from qslm.attention import bench

    results = bench.run(
        names,
        _int_list(seq_lens, "--seq-lens"),
        _int_list(samples, "--samples"),
        dim=dim,
        heads=heads,
        repeats=repeats,
        seed=seed,
        logit_scale=logit_scale,
        threads=threads,
    )
    if as_json:
        for r in results:
            click.echo(json.dumps(r))
    else:
        click.echo(
            f"{'strategy':<16}{'n':>6}{'k':>6}{'rel_error':>11}{'theory':>9}{'N_eff':>9}"
            f"{'ms':>9}{'exact_ms':>10}{'sdpa_ms':>9}"
        )
        for r in results:
            click.echo(
                f"{r['strategy']:<16}{r['seq_len']:>6}{r['samples']:>6}{r['rel_error']:>11.4f}"
                f"{r['naive_theory']:>9.4f}{r['n_eff']:>9.1f}{r['ms_per_call']:>9.3f}"
                f"{r['exact_ms_per_call']:>10.3f}{r['sdpa_ms_per_call']:>9.3f}"
            )
    if plot_path:
        try:
            bench.plot(results, plot_path)
        except ImportError:
            raise ConfigError("--plot needs matplotlib (pip install matplotlib)") from None
        if not as_json:
            click.echo(f"plot written to {plot_path}")
