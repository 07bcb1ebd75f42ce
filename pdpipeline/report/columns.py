"""The columns every report frame is keyed by, and the one step that brings a frame of an older
campaign up to date: the columns added since, null where it lacks them."""

from __future__ import annotations

import polars as pl

# The columns that name a series, in the order its label reads them.
SERIES_KEYS = ["arm", "layout", "engine_variant", "variant"]
# A workload shape, and a workload point: what every arm is measured at.
SHAPE_KEYS = ["input_len", "output_len"]
POINT_KEYS = [*SHAPE_KEYS, "concurrency", "request_rate"]

# Columns the report reads that were added after the first campaigns: older frames (a
# published CSV export) lack them.
SERIES_ADDED = {"variant": pl.Utf8, "layout": pl.Utf8, "engine_variant": pl.Utf8}
LINK_ADDED = {"kv_link": pl.Utf8, "kv_link_gbyte_per_s": pl.Float64, "kv_link_fraction": pl.Float64}
# The regime map's series, by role.
REGIME_ADDED = {
    f"{role}_{key}": pl.Utf8
    for role in ("winner", "challenger")
    for key in ("layout", "engine_variant", "variant")
}


def with_current_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with the columns added since older campaigns: null where it lacks them.

    A frame of series (one with `arm`) gets `variant`, `layout` and `engine_variant`: before
    them an arm had one of each. A comparison (one with `kv_gbyte_per_s`) also gets the KV link
    that figure is set against; a regime map (one with `winner_arm`) its series' new parts.
    Columns it has are cast to their type (a column of nulls may come untyped).
    """
    added = {}
    if "arm" in frame.columns:
        added |= SERIES_ADDED
    if "kv_gbyte_per_s" in frame.columns:
        added |= LINK_ADDED
    if "winner_arm" in frame.columns:
        added |= REGIME_ADDED
    return frame.with_columns(
        pl.col(c).cast(t) if c in frame.columns else pl.lit(None, dtype=t).alias(c)
        for c, t in added.items()
    )
