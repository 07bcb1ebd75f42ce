"""The comparison with handoff variants, from a real campaign: two H100s, single, replicated,
and the disaggregated arm with a pull and a push variant (results/h100x2-pull-vs-push-2026-11-27);
and with layouts and engine variants, from a constructed one.
"""

from __future__ import annotations

import polars as pl
import pytest

from pdpipeline.report.columns import with_current_columns
from pdpipeline.report.compare import KvLink, arm_label, compare, link_between
from pdpipeline.report.markdown import comparison as markdown
from pdpipeline.report.series import Series, series_label
from pdpipeline.report.verdict import headline, verdicts
from pdpipeline.warehouse.rows import ComparisonRow, columns
from tests.report.constructed import GOODPUT, devices, layouts_campaign
from tests.support.published import (
    BASELINES,
    CAMPAIGN,
    PUSH_VS_PULL,
    VARIANTS,
    lengths_as_text,
    read_csv,
    two_variant_campaign,
)

SERIES = [
    ("single", None),
    ("replicated", None),
    ("disaggregated", "pull"),
    ("disaggregated", "push"),
]


@pytest.fixture(scope="module")
def campaign() -> dict[str, pl.DataFrame]:
    return two_variant_campaign()


@pytest.fixture(scope="module")
def comparison(campaign) -> pl.DataFrame:
    return compare(campaign["runs"])


def _point(row: dict) -> tuple:
    return row["input_len"], row["output_len"], row["concurrency"], row["request_rate"]


def test_the_campaign_has_unique_runs_of_every_series(campaign):
    runs = campaign["runs"]
    assert runs["run_id"].n_unique() == runs.height == 4 * 12
    assert runs["campaign_id"].unique().to_list() == [CAMPAIGN]
    assert set(runs.select("arm", "variant").unique().rows()) == set(SERIES)


def test_one_row_per_point_for_each_series_in_order(comparison):
    points = comparison.select("input_len", "output_len", "concurrency").unique()
    assert points.height == 6
    assert comparison.height == 6 * len(SERIES)
    for _, group in comparison.group_by("input_len", "concurrency", maintain_order=True):
        assert group.select("arm", "variant").rows() == SERIES
    assert comparison["valid_repeats"].to_list() == [2] * comparison.height


def test_each_variant_is_set_against_the_same_replicated_row(comparison, campaign):
    replicated = {
        _point(r): r["output_throughput_per_gpu"]
        for r in comparison.filter(pl.col("arm") == "replicated").iter_rows(named=True)
    }
    runs = campaign["runs"].filter(pl.col("valid"))
    for variant in ("pull", "push"):
        rows = comparison.filter(pl.col("variant") == variant)
        assert rows.height == 6
        for r in rows.iter_rows(named=True):
            # The variant's own repeats only, straight from its runs.
            own = runs.filter(
                (pl.col("variant") == variant)
                & (pl.col("input_len") == r["input_len"])
                & (pl.col("concurrency") == r["concurrency"])
            )["output_throughput_per_gpu"]
            assert own.len() == 2
            assert r["output_throughput_per_gpu"] == pytest.approx(own.mean())
            assert r["per_gpu_vs_replicated"] == pytest.approx(own.mean() / replicated[_point(r)])
    pull = comparison.filter(pl.col("variant") == "pull")["per_gpu_vs_replicated"]
    push = comparison.filter(pl.col("variant") == "push")["per_gpu_vs_replicated"]
    assert (pull != push).all()  # two series, not one averaged over both


def test_a_one_variant_campaign_compares_as_it_was_published():
    # The H200 push campaign ran before variants existed; its published comparison came from the
    # comparison code of that time. As variant 'push', its runs give the same figures.
    runs = lengths_as_text(read_csv(PUSH_VS_PULL / "push" / "runs.csv")).with_columns(
        variant=pl.lit("push"), request_rate=pl.col("request_rate").cast(pl.Float64)
    )
    published = lengths_as_text(read_csv(PUSH_VS_PULL / "push" / "comparison.csv"))
    ours = compare(runs).filter(pl.col("variant") == "push")
    joined = ours.join(published, on=["input_len", "output_len", "concurrency"], suffix="_pub")
    assert joined.height == 6
    for column in ("output_throughput_per_gpu", "ttft_p50_ms", "kv_gbyte_per_s"):
        assert joined[column].to_list() == pytest.approx(joined[f"{column}_pub"].to_list())


def test_the_stored_comparison_is_what_compare_gives(campaign):
    stored = lengths_as_text(read_csv(VARIANTS / "comparison.csv"))
    link = link_between(campaign["hosts"], ["h100"], ["h100"])
    ours = compare(campaign["runs"], link=link)
    keys = ["input_len", "output_len", "concurrency", "arm", "variant"]
    joined = ours.join(stored, on=keys, suffix="_pub", nulls_equal=True)
    assert joined.height == ours.height == stored.height == 24
    for column in ("output_throughput_per_gpu", "per_gpu_vs_replicated", "kv_link_fraction"):
        assert joined[column].to_list() == pytest.approx(joined[f"{column}_pub"].to_list())


def test_kv_link_share_on_disaggregated_rows_only(campaign):
    table = compare(campaign["runs"], link=KvLink("x NVLink", 478.1))
    moved = table.filter(pl.col("arm") == "disaggregated")
    assert moved["kv_link"].to_list() == ["x NVLink"] * 12
    assert moved["kv_link_gbyte_per_s"].to_list() == [478.1] * 12
    assert moved["kv_link_fraction"].to_list() == pytest.approx(
        (moved["kv_gbyte_per_s"] / 478.1).to_list()
    )
    # The campaign moved the KV at under 3% of the NVLink.
    assert (moved["kv_link_fraction"] < 0.03).all() and (moved["kv_link_fraction"] > 0).all()
    others = table.filter(pl.col("arm") != "disaggregated")
    for column in ("kv_link", "kv_link_gbyte_per_s", "kv_link_fraction"):
        assert others[column].null_count() == others.height == 12
    assert compare(campaign["runs"])["kv_link"].null_count() == table.height


def test_markdown_labels_variants_and_shows_the_link(campaign):
    text = markdown(compare(campaign["runs"], link=KvLink("x NVLink", 478.1)))
    assert "| 512 | 128 | c=8 | disaggregated (push) | 2 |" in text
    assert "| 512 | 128 | c=8 | disaggregated (pull) | 2 |" in text
    assert "| 512 | 128 | c=8 | replicated | 2 |" in text
    assert "| link | of link |" in text
    kv_rows = [line for line in text.splitlines() if "x NVLink, 478.1 GB/s" in line]
    assert len(kv_rows) == 12
    assert all(line.rstrip(" |").endswith("%") for line in kv_rows)


def test_verdict_and_headline_name_both_variants(comparison):
    points = verdicts(comparison)
    assert len(points) == 6
    assert {p.throughput_winner for p in points} <= {
        "replicated",
        "disaggregated (pull)",
        "disaggregated (push)",
    }
    for p in points:
        assert {s.variant for s in p.disaggregated_vs_replicated} == {"pull", "push"}
    line = headline(points)
    for variant in ("pull", "push"):
        ratios = comparison.filter(pl.col("variant") == variant)["per_gpu_vs_replicated"]
        wins = int((ratios > 1).sum())
        assert (
            f"disaggregated ({variant}) beat replication at {wins} of 6 workload points "
            f"(ratio {ratios.min():.2f}x to {ratios.max():.2f}x)"
        ) in line


def test_runs_without_a_variant_column_are_one_variant():
    runs = read_csv(BASELINES / "runs.csv").with_columns(
        pl.col("input_len", "output_len").cast(pl.Utf8)
    )
    assert "variant" not in runs.columns
    table = compare(with_current_columns(runs))
    assert table.filter(pl.col("arm") == "disaggregated")["variant"].null_count() == 6
    assert "| 512 | 128 | c=32 | disaggregated | 2 |" in markdown(table)
    line = headline(verdicts(table))
    assert line.startswith("Disaggregation beat replication (per-GPU throughput) at 0 of 6")


def test_a_series_is_named_by_the_parts_it_has():
    assert series_label("disaggregated", "3P1D", "block128", "pull") == (
        "disaggregated 3P1D (pull) [block128]"
    )
    assert series_label("replicated", "4R", "block128") == "replicated 4R [block128]"
    assert series_label("single", None, "block128") == "single [block128]"
    # Campaigns from before layouts and engine variants read as they did.
    assert Series("disaggregated", variant="push").label == "disaggregated (push)"
    assert arm_label("disaggregated", "push") == "disaggregated (push)"
    assert arm_label("disaggregated", None) == "disaggregated"
    assert arm_label("replicated", None) == "replicated"


def test_link_between_found_hosts():
    # Two GPUs on NVLink, 3824.9 Gbit/s per GPU as hardware_check found it.
    hosts = read_csv(VARIANTS / "hosts.csv")
    link = link_between(hosts, ["h100"], ["h100"])
    assert link is not None and link.name == "h100 NVLink"
    assert link.gbyte_per_s == pytest.approx(478.1, abs=0.1)
    assert link_between(hosts, ["h100"], ["elsewhere"]) is None  # a host not checked


def test_link_between_hosts_is_the_slowest_network_link():
    hosts = pl.DataFrame(
        {
            "host": ["a", "b", "c", "cpu"],
            "device_kind": ["cuda", "cuda", "cuda", "cpu"],
            "link_gbit_per_s": [400.0, 200.0, None, 25.0],
            "nvlink_gbit_per_s": [3600.0, None, None, None],
        }
    )
    assert link_between(hosts, ["a"], ["b"]) == KvLink("a–b network", 25.0)
    assert link_between(hosts, ["b"], ["a", "b"]) == KvLink("b–a network", 25.0)
    assert link_between(hosts, ["a"], ["c"]) is None  # c's rate unknown
    assert link_between(hosts, ["b"], ["b"]) is None  # one host without NVLink
    assert link_between(hosts, ["cpu"], ["cpu"]) is None
    assert link_between(hosts, ["a"], ["a"]) == KvLink("a NVLink", 450.0)


def test_a_published_comparison_without_variant_or_link_columns():
    published = read_csv(BASELINES / "comparison.csv").with_columns(
        pl.col("input_len", "output_len").cast(pl.Utf8)
    )
    assert "variant" not in published.columns and "kv_link" not in published.columns
    text = markdown(with_current_columns(published))
    assert "| 512 | 128 | c=32 | disaggregated | 2 |" in text
    kv_rows = [line for line in text.splitlines() if line.startswith("| 512 | c=32 |")]
    assert len(kv_rows) == 1 and kv_rows[0].endswith("| – | – |")


def test_one_repeat_has_no_spread_to_judge_a_gap_against(campaign):
    first_repeat = campaign["runs"].filter(pl.col("repeat") == 0)
    points = verdicts(compare(first_repeat))
    assert len(points) == 6
    assert {p.throughput_significant for p in points} == {None}
    assert "one repeat: no run-to-run spread to judge it against" in points[0].sentence()
    assert {p.throughput_significant for p in verdicts(compare(campaign["runs"]))} <= {True, False}


# --- a campaign of two layouts and two engine variants (tests/report/constructed.py) ---------


@pytest.fixture(scope="module")
def layouts() -> pl.DataFrame:
    return compare(layouts_campaign()[0])


def _row(table: pl.DataFrame, series: Series) -> dict:
    (row,) = table.filter(series.rows()).rows(named=True)
    return row


def test_a_layout_is_set_against_replicas_on_as_many_devices_with_its_engine_variant(layouts):
    assert layouts.columns == columns(ComparisonRow)
    assert layouts.height == len(GOODPUT) == 14
    for series, goodput in GOODPUT.items():
        row = _row(layouts, series)
        assert row["gpus"] == devices(series, 1)
        assert row["output_throughput_per_gpu"] == pytest.approx(64 * goodput)
        single = GOODPUT[Series("single", None, series.engine_variant)]
        assert row["per_gpu_vs_single"] == pytest.approx(goodput / single)
    ratios = {
        # 1P1D on two devices against 2R, 3P1D on four against 4R, each in its engine variant.
        Series("disaggregated", "1P1D", "block16", "push"): 3.1 / 3.0,
        Series("disaggregated", "1P1D", "block128", "push"): 3.35 / 2.8,
        Series("disaggregated", "3P1D", "block16", "pull"): 3.0 / 2.5,
        Series("disaggregated", "3P1D", "block128", "push"): 3.9 / 3.2,
        Series("replicated", "4R", "block128"): 1.0,
        # Single, without a layout, against the smallest replicated series.
        Series("single", None, "block16"): 5.0 / 3.0,
        Series("single", None, "block128"): 5.5 / 2.8,
    }
    for series, ratio in ratios.items():
        assert _row(layouts, series)["per_gpu_vs_replicated"] == pytest.approx(ratio), series
    # Latency ratios against the same replicated series: 800 ms TTFT against 4R's 50 ms.
    push = _row(layouts, Series("disaggregated", "3P1D", "block128", "push"))
    assert push["ttft_p50_vs_replicated"] == pytest.approx(800 / 50)
    assert push["tpot_p50_vs_replicated"] == pytest.approx(5 / 20)


def test_a_layout_without_replicas_on_as_many_devices_has_no_replicated_ratio():
    runs = layouts_campaign()[0].filter(pl.col("layout").ne_missing(pl.lit("4R")))
    table = compare(runs)
    three = table.filter(pl.col("layout") == "3P1D")
    assert three.height == 4 and three["per_gpu_vs_replicated"].null_count() == 4
    assert three["ttft_p50_vs_replicated"].null_count() == 4
    assert table.filter(pl.col("layout") == "1P1D")["per_gpu_vs_replicated"].null_count() == 0


def test_rows_are_in_arm_then_layout_engine_and_handoff_order(layouts):
    assert [Series.of(r).label for r in layouts.iter_rows(named=True)] == [
        "single [block16]",
        "single [block128]",
        "replicated 2R [block16]",
        "replicated 2R [block128]",
        "replicated 4R [block16]",
        "replicated 4R [block128]",
        "disaggregated 1P1D (pull) [block16]",
        "disaggregated 1P1D (push) [block16]",
        "disaggregated 1P1D (pull) [block128]",
        "disaggregated 1P1D (push) [block128]",
        "disaggregated 3P1D (pull) [block16]",
        "disaggregated 3P1D (push) [block16]",
        "disaggregated 3P1D (pull) [block128]",
        "disaggregated 3P1D (push) [block128]",
    ]
    assert "| 512 | 64 | c=8 | disaggregated 3P1D (push) [block128] | 4 |" in markdown(layouts)


def test_each_layout_has_the_kv_link_its_hosts_cross():
    links = {"1P1D": KvLink("a NVLink", 450.0), "3P1D": KvLink("a–b network", 25.0)}
    table = compare(layouts_campaign()[0], link=links)
    moved = table.filter(pl.col("arm") == "disaggregated")
    assert dict(moved.select("layout", "kv_link").unique().rows()) == {
        "1P1D": "a NVLink",
        "3P1D": "a–b network",
    }
    # 20 transfers of 1 MB in 20 ms a run: 1 GB/s, of 25 GB/s and of 450.
    three = moved.filter(pl.col("layout") == "3P1D")
    assert three["kv_link_fraction"].to_list() == pytest.approx([1 / 25] * 4)
    assert table.filter(pl.col("arm") != "disaggregated")["kv_link"].null_count() == 6


def test_the_verdict_per_point_names_layouts_and_engine_variants(layouts):
    (point,) = verdicts(layouts)
    # Every layout competes per GPU; single, on one device, does not.
    assert point.throughput_winner == "disaggregated 3P1D (push) [block128]"
    assert point.throughput_gain == pytest.approx(3.9 / 3.6 - 1)
    assert point.disaggregated_vs_replicated[
        Series("disaggregated", "1P1D", "block128", "push")
    ] == pytest.approx(3.35 / 2.8)
    assert "disaggregated 1P1D (pull) [block16] beat replication at 0 of 1" in headline([point])


def test_runs_with_null_layout_and_engine_columns_compare_as_runs_without_them(campaign):
    without = campaign["runs"]
    assert "layout" not in without.columns
    nulls = without.with_columns(layout=pl.lit(None), engine_variant=pl.lit(None))
    assert compare(nulls).equals(compare(without))
    assert markdown(compare(nulls)) == markdown(compare(without))
