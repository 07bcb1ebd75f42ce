"""Where a disaggregated request's time goes, per layout and load: the `handoff_breakdown`
view's runs, averaged over repeats (the report's table of them: report/tables.py).

TTFT = client→proxy hop + the proxy's own time, which holds the prefill leg (engine queue and
prefill compute, plus HTTP and the one-token answer) and the handoff (KV post and transfer, then
decode admission and its first step). The handoff minus the KV post and transfer is what the
handover costs beyond moving the bytes.
"""

from __future__ import annotations

import polars as pl

from pdpipeline.report.formats import by_shape
from pdpipeline.warehouse.store import Warehouse

# (view column, table header), in the order a request lives them; times in ms.
PARTS = [
    ("ttft_s", "TTFT"),
    ("prefill_queue_s", "prefill queue"),
    ("prefill_compute_s", "prefill compute"),
    ("prefill_leg_s", "prefill leg"),
    ("kv_post_s", "KV post"),
    ("kv_transfer_s", "KV transfer"),
    ("handoff_s", "handoff"),
    ("decode_queue_s", "decode queue"),
    ("decode_s", "decode"),
]


def breakdown(warehouse: Warehouse, campaign_id: str) -> pl.DataFrame:
    """`per_setup` of a stored campaign's handoff_breakdown view."""
    return per_setup(
        warehouse.query("SELECT * FROM handoff_breakdown WHERE campaign_id = ?", [campaign_id])
    )


def per_setup(runs: pl.DataFrame) -> pl.DataFrame:
    """Per disaggregated series and point of the handoff_breakdown view's `runs`: each part in
    ms (mean over repeats of the run's medians or means) and the handover's cost beyond the KV
    transfer."""
    if runs.is_empty():
        return runs
    keys = [
        "layout",
        "engine_variant",
        "variant",
        "input_len",
        "output_len",
        "concurrency",
        "request_rate",
    ]
    return (
        runs.group_by(keys, maintain_order=True)
        .agg(*(pl.col(c).mean() * 1000 for c, _ in PARTS))
        .with_columns(
            beyond_kv=pl.col("handoff_s")
            - pl.col("kv_post_s").fill_null(0.0)
            - pl.col("kv_transfer_s").fill_null(0.0)
        )
        .sort(
            [
                *by_shape(),
                "concurrency",
                "request_rate",
                "layout",
                "engine_variant",
                "variant",
            ],
            nulls_last=True,
        )
    )
