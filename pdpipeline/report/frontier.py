"""The throughput-interactivity frontier: per series (arm, layout, engine variant, handoff
variant), output tokens/s per GPU against tokens/s per user (1000 / TPOT p50 ms) over the load
sweep, and which series leads at each level. Both axes are per device or per user, so series on
different numbers of devices share one figure.

A point is on its series' front when no other point of the same series and workload shape is at
least as good on both axes and better on one: the operating points worth choosing. Across
series, the leader at an interactivity level X is the series whose measured points with at least
X tokens/s per user reach the most tokens/s per GPU: what someone who needs X per user gets from
each setup. The warehouse's `frontier` view computes the same front in SQL.
"""

from __future__ import annotations

import polars as pl

from pdpipeline.report.columns import POINT_KEYS, SERIES_KEYS, SHAPE_KEYS, with_current_columns
from pdpipeline.report.formats import rough, shapes
from pdpipeline.report.series import Series, contenders

X = "tok_s_per_user"
Y = "output_throughput_per_gpu"
# A lead held over less than this share of its interactivity, between two spans led by the same
# series, is within TPOT's run-to-run spread (its p50 moved up to 7% between the repeats of the
# published campaigns at full load): the sentence folds it into its neighbours.
MIN_SPAN = 0.05


def frontier(points: pl.DataFrame) -> pl.DataFrame:
    """One row per series and workload point: tokens/s per user (x), output tokens/s per GPU (y)
    and `on_front`, from a comparison or from runs (valid repeats averaged, as `compare` does)."""
    points = with_current_columns(points)
    keys = [k for k in ("campaign_id",) if k in points.columns] + [*SERIES_KEYS, *POINT_KEYS]
    if "valid" in points.columns:  # runs: one row per repeat
        points = (
            points.filter(pl.col("valid"))
            .group_by(keys)
            .agg(pl.col("gpus").max(), pl.col("tpot_p50_ms").mean(), pl.col(Y).mean())
        )
    measured = points.filter((pl.col("tpot_p50_ms") > 0) & pl.col(Y).is_not_null()).select(
        *keys, "gpus", (1000 / pl.col("tpot_p50_ms")).alias(X), Y
    )
    group = [k for k in keys if k not in ("concurrency", "request_rate")]
    others = measured.select(*group, pl.col(X).alias("_x"), pl.col(Y).alias("_y"))
    dominated = (
        measured.join(others, on=group, nulls_equal=True)
        .filter(
            (pl.col("_x") >= pl.col(X))
            & (pl.col("_y") >= pl.col(Y))
            & ((pl.col("_x") > pl.col(X)) | (pl.col("_y") > pl.col(Y)))
        )
        .select(keys)
        .unique()
        .with_columns(_dominated=pl.lit(True))
    )
    return (
        measured.join(dominated, on=keys, how="left", nulls_equal=True)
        .with_columns(on_front=pl.col("_dominated").is_null())
        .drop("_dominated")
        .sort(*group, X, nulls_last=True)
    )


def leaders(points: pl.DataFrame) -> pl.DataFrame:
    """Per workload shape, the spans of tokens/s per user and the series that reaches the most
    output tokens/s per GPU at each (the upper envelope of the fronts, over measured points).

    A span runs from `above` (exclusive; null: no lower bound) to `up_to` (inclusive). Single
    does not compete with setups on several GPUs (`series.contenders`): per GPU, one instance
    traces the same curve as replicated ones (replicated at load 2c is each instance at c), so
    between them the lead is where each sweep happened to sample, not an architecture's.
    `gpus` is the GPUs every competing setup has, where they have the same.
    """
    front = frontier(points) if X not in points.columns else points
    rows = []
    for n_in, n_out in shapes(front):
        shape = contenders(
            front.filter((pl.col("input_len") == n_in) & (pl.col("output_len") == n_out))
        )
        gpus = shape["gpus"][0] if shape["gpus"].n_unique() == 1 else None
        levels = sorted(set(shape[X].to_list()))
        spans: list[dict] = []
        for below, level in zip([None, *levels], levels, strict=False):
            best = shape.filter(pl.col(X) >= level).sort(Y, X, descending=True).row(0, named=True)
            if spans and _leader(spans[-1]) == Series.of(best):
                spans[-1]["up_to"] = level
                continue
            spans.append(
                {
                    "input_len": n_in,
                    "output_len": n_out,
                    "above": below,
                    "up_to": level,
                    **{k: best[k] for k in SERIES_KEYS},
                    "gpus": gpus,
                }
            )
        rows.extend(_fold_noise(spans))
    schema = {
        "input_len": pl.Utf8,
        "output_len": pl.Utf8,
        "above": pl.Float64,
        "up_to": pl.Float64,
        **dict.fromkeys(SERIES_KEYS, pl.Utf8),
        "gpus": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema)


def _fold_noise(spans: list[dict]) -> list[dict]:
    """Merge a narrow span (under MIN_SPAN of its level) into its neighbours when both are led
    by one series, narrowest first."""
    spans = [dict(s) for s in spans]
    while True:
        narrow = [
            i
            for i in range(1, len(spans) - 1)
            if _leader(spans[i - 1]) == _leader(spans[i + 1])
            and (spans[i]["up_to"] - spans[i]["above"]) < MIN_SPAN * spans[i]["up_to"]
        ]
        if not narrow:
            return spans
        i = min(narrow, key=lambda j: (spans[j]["up_to"] - spans[j]["above"]) / spans[j]["up_to"])
        spans[i - 1]["up_to"] = spans[i + 1]["up_to"]
        del spans[i : i + 2]


def _leader(span: dict) -> Series:
    return Series.of(span)


def frontier_sentence(points: pl.DataFrame) -> str:
    """Who leads where, per shape: 'At 512/128 (setups on 2 GPUs), at more than 150 tok/s per
    user disaggregated (push) gives the most output tokens/s per GPU; at 150 or less,
    replicated.'"""
    return " ".join(frontier_sentences(points))


def frontier_sentences(points: pl.DataFrame) -> list[str]:
    """`frontier_sentence`, one sentence per workload shape."""
    lead = leaders(points)
    if not lead.height:
        return ["No measured points to draw a frontier from."]
    per_shape = lead.partition_by(SHAPE_KEYS, maintain_order=True)
    return [_shape_sentence(shape.rows(named=True)) for shape in per_shape]


def _shape_sentence(spans: list[dict]) -> str:
    first = spans[0]
    where = f"At {first['input_len']}/{first['output_len']}"
    if first["gpus"] is not None:
        where += f" (setups on {first['gpus']} GPUs)"
    if len(spans) == 1:
        return (
            f"{where}, {_name(first)} gives the most output tokens/s per GPU at every "
            f"interactivity measured (up to {rough(first['up_to'])} tok/s per user)."
        )
    # From the most interactive span down: the order in which someone with a stricter TPOT
    # target reads it.
    top, *middle, bottom = reversed(spans)
    parts = [f"at more than {rough(top['above'])} tok/s per user {_name(top)} gives the most"]
    parts[0] += " output tokens/s per GPU"
    parts += [f"from {rough(s['above'])} to {rough(s['up_to'])}, {_name(s)}" for s in middle]
    parts.append(f"at {rough(bottom['up_to'])} or less, {_name(bottom)}")
    return f"{where}, {'; '.join(parts)}."


def _name(span: dict) -> str:
    return Series.of(span).label
