"""A campaign's series: their labels and order, which of them compete for a lead, and which
replicated series each is judged against."""

from __future__ import annotations

import polars as pl

from pdpipeline.report.series import (
    Series,
    contenders,
    has_new_dimensions,
    in_order,
    rival_devices,
    series_label,
    series_of,
)


def test_a_label_names_the_parts_a_series_has():
    assert series_label("disaggregated", "3P1D", "block128", "pull") == (
        "disaggregated 3P1D (pull) [block128]"
    )
    assert series_label("replicated", "4R", "block128") == "replicated 4R [block128]"
    assert series_label("single", None, "block128") == "single [block128]"
    # Campaigns from before layouts and engine variants.
    assert series_label("disaggregated", variant="pull") == "disaggregated (pull)"
    assert series_label("replicated") == "replicated"


def test_a_series_is_read_from_a_row_under_any_prefix_and_suffix():
    row = {"winner_arm": "replicated", "winner_layout": "2R", "winner_engine_variant": "b16"}
    assert Series.of(row, "winner_") == Series("replicated", "2R", "b16", None)
    assert Series.of({"arm_before": "single"}, suffix="_before") == Series("single")
    # A row of an older campaign has no layout or engine variant column.
    assert Series.of({"arm": "disaggregated", "variant": "push"}).label == "disaggregated (push)"


def frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "arm": pl.Utf8,
            "layout": pl.Utf8,
            "engine_variant": pl.Utf8,
            "variant": pl.Utf8,
            "gpus": pl.Int64,
        },
        orient="row",
    )


CAMPAIGN = frame(
    [
        ("disaggregated", "3P1D", "block128", "push", 4),
        ("disaggregated", "1P1D", "block16", "pull", 2),
        ("replicated", "4R", "block16", None, 4),
        ("replicated", "12R", "block16", None, 12),
        ("replicated", "2R", "block128", None, 2),
        ("replicated", "2R", "block16", None, 2),
        ("single", None, "block16", None, 1),
    ]
)


def test_series_are_in_arm_order_then_by_the_numbers_in_their_names():
    assert [s.label for s in series_of(CAMPAIGN)] == [
        "single [block16]",
        "replicated 2R [block16]",
        "replicated 2R [block128]",
        "replicated 4R [block16]",
        "replicated 12R [block16]",
        "disaggregated 1P1D (pull) [block16]",
        "disaggregated 3P1D (push) [block128]",
    ]
    assert in_order(CAMPAIGN)["gpus"].to_list() == [1, 2, 2, 4, 12, 2, 4]


def test_every_layout_competes_and_single_does_not():
    assert contenders(CAMPAIGN)["arm"].to_list().count("single") == 0
    assert contenders(CAMPAIGN).height == CAMPAIGN.height - 1
    # Single and one other series: nothing to set them apart, both stay.
    two = CAMPAIGN.filter(pl.col("arm").is_in(["single"]) | (pl.col("layout") == "4R"))
    assert contenders(two).height == 2


def test_a_series_is_judged_against_replicas_on_as_many_devices():
    replicated = [2, 4]
    assert rival_devices("disaggregated", 4, replicated) == 4
    assert rival_devices("disaggregated", 2, replicated) == 2
    assert rival_devices("disaggregated", 8, replicated) is None
    # Single has no layout: the smallest replicated series, as before layouts.
    assert rival_devices("single", 1, replicated) == 2
    assert rival_devices("single", 1, []) is None


def test_a_campaign_from_before_layouts_has_no_new_dimensions():
    old = CAMPAIGN.with_columns(layout=pl.lit(None), engine_variant=pl.lit(None))
    assert not has_new_dimensions(old)
    assert has_new_dimensions(CAMPAIGN)
