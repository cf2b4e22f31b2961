"""Drawing and table helpers of the build report (``qslm.report`` and its sections)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLOTS = "report"


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(fmt(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


def figure(width: float = 7.0, height: float = 4.0) -> Any:
    # The object-oriented API with the Agg canvas: no pyplot global state and no GUI backend,
    # so it works on a headless machine and inside threads.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Any, plots: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(plots / name, format="png")
    return f"![{name}]({PLOTS}/{name})"
