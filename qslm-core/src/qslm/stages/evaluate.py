"""The evaluate stage: every evaluator's metrics, written to ``metrics.json``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qslm.builds import write_json
from qslm.components import Artifact, Dataset, Evaluator

if TYPE_CHECKING:
    from qslm.context import RunContext
    from qslm.plugins import ComponentRef


def run_evaluate_stage(
    ctx: RunContext, evaluators: list[ComponentRef], artifact: Artifact, data: Dataset
) -> dict[str, Any]:
    """Metrics by evaluator name (plus the trainer's own, as ``train``)."""
    metrics: dict[str, Any] = {}
    with ctx.stage("evaluate"):
        for ref in evaluators:
            evaluator = ref.create()
            assert isinstance(evaluator, Evaluator)
            result = evaluator.evaluate(ctx, artifact, data)
            metrics[ref.spec.name] = result
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in result.items())
            ctx.progress(f"  {ref.spec.name}: {shown}")
    if artifact.metrics:
        metrics["train"] = artifact.metrics
    write_json(ctx.build_dir / "metrics.json", metrics)
    return metrics


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
