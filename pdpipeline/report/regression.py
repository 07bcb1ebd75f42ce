"""Regressions: a campaign against the previous campaign of the same profile."""

from __future__ import annotations

import polars as pl

from pdpipeline.report.columns import POINT_KEYS, SERIES_KEYS
from pdpipeline.report.load import Campaign, read_campaign
from pdpipeline.warehouse.store import Warehouse

# The regime map's columns naming a cell's winner.
WINNER_KEYS = [f"winner_{key}" for key in SERIES_KEYS]
REGIME_CELL = ["input_len", "output_len", "ttft_ms", "tpot_ms", "attainment"]
_COMPARED = ["campaign_id", *SERIES_KEYS, *POINT_KEYS, "output_throughput_per_gpu", "ttft_p50_ms"]


def regressed(campaign: Campaign, threshold: float) -> pl.DataFrame:
    """Points and series (arm, layout, engine variant, handoff variant) whose per-GPU throughput
    fell, or TTFT p50 rose, by more than `threshold` (a fraction) since the previous campaign;
    empty when there is none.

    A series is compared only with the same series; campaigns from before layouts, engine
    variants or handoff variants have none of them (null matches null).
    """
    if campaign.previous is None:
        return pl.DataFrame(schema={c: pl.Utf8 for c in (*SERIES_KEYS, "metric")})
    now, before = (
        frame.filter(pl.col("valid_repeats") > 0).select(_COMPARED)
        for frame in (campaign["comparison"], campaign.previous.comparison)
    )
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


def moved_cells(campaign: Campaign) -> pl.DataFrame:
    """Cells of the regime map whose winner changed since the previous campaign: the boundary
    between the setups moved. Empty when there is none, or no earlier map.

    Cells are matched by shape and limits (grids sit on one lattice, so campaigns with similar
    latencies share most cells). A cell where either campaign's interval calls a tie, or no
    setup met it, has no winner to lose."""
    if campaign.previous is None:
        return pl.DataFrame(schema={c: pl.Utf8 for c in ("input_len", "output_len", "previous")})
    now, before = (
        frame.filter(pl.col("winner_arm").is_not_null() & pl.col("tie").ne_missing(True)).select(
            *REGIME_CELL, *WINNER_KEYS
        )
        for frame in (campaign["regime_map"], campaign.previous.regime_map)
    )
    joined = now.join(before, on=REGIME_CELL, suffix="_before")
    changed = pl.lit(False)
    for key in WINNER_KEYS:
        changed |= pl.col(key).ne_missing(pl.col(f"{key}_before"))
    return joined.filter(changed).with_columns(previous=pl.lit(campaign.previous.campaign_id))


def regressions(warehouse: Warehouse, campaign_id: str, threshold: float) -> pl.DataFrame:
    """`regressed` of a stored campaign."""
    return regressed(read_campaign(warehouse, campaign_id), threshold)


def regime_changes(warehouse: Warehouse, campaign_id: str) -> pl.DataFrame:
    """`moved_cells` of a stored campaign."""
    return moved_cells(read_campaign(warehouse, campaign_id))
