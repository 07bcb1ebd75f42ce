"""Where a disaggregated request's time goes, per layout and load: the `handoff_breakdown`
view's runs, averaged over repeats, as the report's table.

TTFT = client→proxy hop + the proxy's own time, which holds the prefill leg (engine queue and
prefill compute, plus HTTP and the one-token answer) and the handoff (KV post and transfer, then
decode admission and its first step). The handoff minus the KV post and transfer is what the
handover costs beyond moving the bytes.
"""

from __future__ import annotations

import polars as pl

from pdpipeline.report.series import Series
from pdpipeline.report.slo import load_label
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
    """Per disaggregated series and point: each part in ms (mean over repeats of the run's
    medians or means) and the handover's cost beyond the KV transfer."""
    runs = warehouse.query("SELECT * FROM handoff_breakdown WHERE campaign_id = ?", [campaign_id])
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
                # Shortest prompt first: '512' before '2048'.
                pl.col("input_len").str.extract(r"^(\d+)").cast(pl.Int64),
                pl.col("output_len").str.extract(r"^(\d+)").cast(pl.Int64),
                "concurrency",
                "request_rate",
                "layout",
                "engine_variant",
                "variant",
            ],
            nulls_last=True,
        )
    )


def markdown(frame: pl.DataFrame) -> str:
    """The breakdown as a markdown table with human headers, times in ms."""
    if frame.is_empty():
        return ""
    headers = ["point", "setup", *(f"{h} ms" for _, h in PARTS), "handoff beyond KV ms"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in frame.iter_rows(named=True):
        point = (
            f"{row['input_len']}/{row['output_len']} "
            f"{load_label(row['concurrency'], row['request_rate'])}"
        )
        setup = Series.of(row | {"arm": "disaggregated"}).label
        cells = [_ms(row[c]) for c, _ in PARTS] + [_ms(row["beyond_kv"])]
        lines.append("| " + " | ".join([point, setup, *cells]) + " |")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
