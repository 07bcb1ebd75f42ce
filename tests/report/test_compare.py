"""The comparison with handoff variants, from a real campaign: two H100s, single, replicated,
and the disaggregated arm with a pull and a push variant (results/h100x2-pull-vs-push-2026-11-27).
"""

from __future__ import annotations

import polars as pl
import pytest

from pdpipeline.report.compare import (
    KvLink,
    arm_label,
    compare,
    link_between,
    markdown,
    with_current_columns,
)
from pdpipeline.report.verdict import headline, verdicts
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
        assert set(p.disaggregated_vs_replicated) == {"pull", "push"}
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


def test_arm_label():
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
