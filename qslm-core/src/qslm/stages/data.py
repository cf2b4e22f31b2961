"""The data stage: the data source's records, counted and hashed into the manifest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qslm.components import Dataset, DataSource

if TYPE_CHECKING:
    from qslm.context import RunContext


def run_data_stage(ctx: RunContext, source: DataSource) -> Dataset:
    """Load the records and record their counts and hash in ``ctx.manifest["data"]``."""
    with ctx.stage("data"):
        data = source.load(ctx)
        ctx.progress(
            f"  {len(data.train)} training and {len(data.validation)} validation "
            f"records, sha256 {data.sha256[:12]}"
        )
    ctx.manifest["data"] = {
        "sha256": data.sha256,
        "train_records": len(data.train),
        "validation_records": len(data.validation),
        **data.info,
    }
    return data
