"""Attainment and goodput per SLO tier, from each run's requests (DistServe's definition).

A request meets a tier when it succeeded and meets every limit the tier gives; a run's
attainment is the share of its counted requests that do, and a load meets the tier when the
share over its repeats reaches the tier's `attainment`. A setup's goodput at a tier is the most
requests per second per GPU meeting it, over the loads where the tier is met.

Counted requests are those that started inside the run's steady window, and rates are over the
window's length; campaigns from before the window count every request over the run's duration.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from pdpipeline.errors import ProfileError
from pdpipeline.profile import DEFAULT_TIER, RUN_SLO, SloTier, stored_profile
from pdpipeline.profile.slo import meets_limits
from pdpipeline.report.columns import POINT_KEYS, SERIES_KEYS, SHAPE_KEYS, with_current_columns
from pdpipeline.warehouse.rows import SloGoodputRow, columns, polars_schema

# The columns of requests this module reads; `in_window` is read where the frame has it.
REQUEST_COLUMNS = ["run_id", "ok", "ttft_s", "tpot_s"]


def campaign_tiers(profile_text: str | None, runs: pl.DataFrame) -> dict[str, SloTier]:
    """The tiers a campaign is judged at: its stored profile's; for a profile that no longer
    parses, one tier of the limits its runs recorded for their own goodput."""
    try:
        if profile_text:
            return stored_profile(profile_text).tiers
    except ProfileError:
        pass  # an older format: its runs still say which limits they were measured against
    recorded = runs.drop_nulls(["slo_ttft_ms", "slo_tpot_ms"]) if runs.height else runs
    if not recorded.height:
        return {DEFAULT_TIER: RUN_SLO}
    limits = recorded["slo_ttft_ms"][0], recorded["slo_tpot_ms"][0]
    return {DEFAULT_TIER: SloTier(ttft_ms=limits[0], tpot_ms=limits[1])}


def meets(ttft_ms: float | None, tpot_ms: float | None) -> pl.Expr:
    """Whether each request of a `requests` frame meets both limits: the tiers' one rule."""
    ok = pl.col("ok").fill_null(False)
    return meets_limits(ok, pl.col("ttft_s") * 1000, pl.col("tpot_s") * 1000, ttft_ms, tpot_ms)


def valid_runs(runs: pl.DataFrame) -> pl.DataFrame:
    """The valid runs, with `window_s` the length rates are over: the steady window where the
    run has one, else its whole duration."""
    window = pl.col("window_s") if "window_s" in runs.columns else pl.lit(None)
    return runs.filter(pl.col("valid")).with_columns(
        window_s=pl.coalesce(window.cast(pl.Float64), pl.col("duration_s"))
    )


def counted(requests: pl.DataFrame) -> pl.DataFrame:
    """The requests that count: those that started inside their run's steady window, or every
    request of a run without one."""
    if "in_window" not in requests.columns:
        return requests
    return requests.filter(pl.col("in_window").fill_null(True))


def goodput_by_tier(
    runs: pl.DataFrame, requests: pl.DataFrame, tiers: Mapping[str, SloTier]
) -> pl.DataFrame:
    """Per valid run and tier, the `slo_goodput` table's rows: attainment, goodput per GPU,
    whether the tier is met at the run's point and whether that point is its series' best.

    A series is (arm, layout, engine variant, handoff variant). `requests` has
    `REQUEST_COLUMNS` (and `in_window` where the campaign has a steady window)."""
    runs = valid_runs(with_current_columns(runs))
    requests = counted(requests)
    point = [*SERIES_KEYS, *POINT_KEYS]
    frames = []
    for name, tier in tiers.items():
        per_run = requests.group_by("run_id").agg(
            pl.len().alias("requests"),
            meets(tier.ttft_ms, tier.tpot_ms).sum().alias("requests_met"),
        )
        frame = (
            runs.drop("requests", strict=False)
            .join(per_run, on="run_id", how="left")
            .with_columns(
                pl.col("requests", "requests_met").fill_null(0).cast(pl.Int64),
                tier=pl.lit(name),
                ttft_ms=pl.lit(tier.ttft_ms, dtype=pl.Float64),
                tpot_ms=pl.lit(tier.tpot_ms, dtype=pl.Float64),
                attainment_target=pl.lit(tier.attainment, dtype=pl.Float64),
            )
            .with_columns(
                attainment=pl.when(pl.col("requests") > 0).then(
                    pl.col("requests_met") / pl.col("requests")
                ),
                goodput_per_gpu=pl.col("requests_met") / pl.col("window_s") / pl.col("gpus"),
                # Over the point's repeats together: a share of all their requests.
                point_attainment=pl.col("requests_met").sum().over(point)
                / pl.col("requests").sum().over(point),
            )
            .with_columns(
                point_met=(pl.col("point_attainment") >= pl.col("attainment_target")).fill_null(
                    False
                )
            )
        )
        frames.append(_mark_best(frame))
    if not frames:
        return pl.DataFrame(schema=_schema())
    return (
        pl.concat(frames)
        .select(columns(SloGoodputRow))
        .cast(_schema())
        .sort(
            [pl.col("tier").replace_strict(list(tiers), list(range(len(tiers)))), *point, "repeat"],
            nulls_last=True,
        )
    )


def _mark_best(frame: pl.DataFrame) -> pl.DataFrame:
    """`best`: the rows of the load where the series serves most at the tier, per shape, among
    the loads that meet it (on equal goodput, the lowest load)."""
    point = [*SERIES_KEYS, *POINT_KEYS]
    points = (
        frame.filter(pl.col("point_met"))
        .group_by(point)
        .agg(pl.col("goodput_per_gpu").mean().alias("_mean"))
        .sort(["_mean", "concurrency", "request_rate"], descending=[True, False, False])
        .unique([*SERIES_KEYS, *SHAPE_KEYS], keep="first", maintain_order=True)
        .select(*point, best=pl.lit(True))
    )
    return frame.join(points, on=point, how="left", nulls_equal=True).with_columns(
        pl.col("best").fill_null(False)
    )


def best_by_tier(goodput: pl.DataFrame) -> pl.DataFrame:
    """Per tier, series and shape: the load where it serves most within the tier, its mean
    goodput and output tokens/s per GPU there and its repeats; null figures for a series that
    meets the tier at no load."""
    keys = ["tier", *SERIES_KEYS, *SHAPE_KEYS]
    every = goodput.group_by(keys, maintain_order=True).agg(
        pl.col("ttft_ms", "tpot_ms", "attainment_target", "gpus").first()
    )
    best = (
        goodput.filter(pl.col("best"))
        .group_by(keys)
        .agg(
            pl.col("concurrency", "request_rate", "point_attainment").first(),
            pl.len().alias("repeats"),
            pl.col("goodput_per_gpu").mean(),
            pl.col("goodput_per_gpu").std().alias("goodput_per_gpu_std"),
            pl.col("output_throughput_per_gpu").mean(),
        )
    )
    return every.join(best, on=keys, how="left", nulls_equal=True).with_columns(
        pl.col("repeats").fill_null(0)
    )


def _schema() -> dict[str, pl.DataType]:
    return polars_schema(SloGoodputRow)
