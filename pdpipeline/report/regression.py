"""Regressions: a campaign against the previous campaign of the same profile."""

from __future__ import annotations

import polars as pl

from pdpipeline.report.compare import POINT_KEYS, SERIES_KEYS
from pdpipeline.warehouse.store import Warehouse

# The regime map's columns naming a cell's winner.
WINNER_KEYS = [f"winner_{key}" for key in SERIES_KEYS]


def previous_campaign(warehouse: Warehouse, campaign_id: str) -> str | None:
    """The latest earlier campaign of the same profile that has a comparison."""
    rows = warehouse.query(
        """
        SELECT p.campaign_id FROM campaigns p, campaigns c
        WHERE c.campaign_id = ? AND p.profile_name = c.profile_name
          AND p.started_at < c.started_at
          AND p.campaign_id IN (SELECT campaign_id FROM comparison)
        ORDER BY p.started_at DESC LIMIT 1
        """,
        [campaign_id],
    )
    return rows["campaign_id"][0] if rows.height else None


def regressions(warehouse: Warehouse, campaign_id: str, threshold: float) -> pl.DataFrame:
    """Points and series (arm, layout, engine variant, handoff variant) whose per-GPU throughput
    fell, or TTFT p50 rose, by more than `threshold` (a fraction) since the previous campaign;
    empty when there is none.

    A series is compared only with the same series; campaigns from before layouts, engine
    variants or handoff variants have none of them (null matches null).
    """
    previous = previous_campaign(warehouse, campaign_id)
    columns = ["campaign_id", *SERIES_KEYS, *POINT_KEYS, "output_throughput_per_gpu", "ttft_p50_ms"]
    if previous is None:
        return pl.DataFrame(schema={c: pl.Utf8 for c in (*SERIES_KEYS, "metric")})
    query = (
        f"SELECT {', '.join(columns)} FROM comparison WHERE campaign_id = ? AND valid_repeats > 0"
    )
    now, before = (warehouse.query(query, [c]) for c in (campaign_id, previous))
    joined = now.join(before, on=[*SERIES_KEYS, *POINT_KEYS], suffix="_before", nulls_equal=True)
    throughput = joined.with_columns(
        metric=pl.lit("output_throughput_per_gpu"),
        change=pl.col("output_throughput_per_gpu") / pl.col("output_throughput_per_gpu_before") - 1,
    ).filter(pl.col("change") < -threshold)
    latency = joined.with_columns(
        metric=pl.lit("ttft_p50_ms"),
        change=pl.col("ttft_p50_ms") / pl.col("ttft_p50_ms_before") - 1,
    ).filter(pl.col("change") > threshold)
    return pl.concat([throughput, latency]).select(
        *SERIES_KEYS,
        *POINT_KEYS,
        "metric",
        "change",
        pl.col("campaign_id_before").alias("previous"),
    )


REGIME_CELL = ["input_len", "output_len", "ttft_ms", "tpot_ms", "attainment"]


def regime_changes(warehouse: Warehouse, campaign_id: str) -> pl.DataFrame:
    """Cells of the regime map whose winner changed since the previous campaign: the boundary
    between the setups moved. Empty when there is none, or no earlier map.

    Cells are matched by shape and limits (grids sit on one lattice, so campaigns with similar
    latencies share most cells). A cell where either campaign's interval calls a tie, or no
    setup met it, has no winner to lose."""
    previous = previous_campaign(warehouse, campaign_id)
    if previous is None:
        return pl.DataFrame(schema={c: pl.Utf8 for c in ("input_len", "output_len", "previous")})
    query = (
        f"SELECT {', '.join([*REGIME_CELL, *WINNER_KEYS])} FROM regime_map "
        "WHERE campaign_id = ? AND winner_arm IS NOT NULL AND tie IS NOT TRUE"
    )
    now, before = (warehouse.query(query, [c]) for c in (campaign_id, previous))
    joined = now.join(before, on=REGIME_CELL, suffix="_before")
    changed = pl.lit(False)
    for key in WINNER_KEYS:
        changed |= pl.col(key).ne_missing(pl.col(f"{key}_before"))
    return joined.filter(changed).with_columns(previous=pl.lit(previous))
