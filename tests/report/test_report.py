"""The report from a real campaign's rows (the published two-H100 results), and from a
constructed one with layouts and engine variants, into a real DuckDB."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import polars as pl
import pytest
import yaml

from pdpipeline.report.analysis import campaign_comparison, store_analysis
from pdpipeline.report.build import build
from pdpipeline.report.columns import with_current_columns
from pdpipeline.report.regime import regime_map
from pdpipeline.report.regression import regressions
from pdpipeline.report.series import Series
from pdpipeline.report.slo import campaign_tiers, goodput_by_tier
from pdpipeline.report.verdict import headline, verdicts
from pdpipeline.warehouse.store import Warehouse
from tests.report.constructed import GOODPUT, layouts_campaign
from tests.support.browser import SCREENSHOTS, browser_page, expect
from tests.support.published import CAMPAIGN as VARIANT_CAMPAIGN
from tests.support.published import two_variant_campaign

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results" / "h100x2-2026-11-27"
CAMPAIGN = "h100x2-20261127T034529Z"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Warehouse:
    """A warehouse holding the published campaign, loaded from its CSV/parquet export."""
    store = Warehouse(tmp_path_factory.mktemp("w") / "w.duckdb")
    tables = {
        t: pl.read_csv(RESULTS / f"{t}.csv", try_parse_dates=True)
        for t in ("hosts", "kv_cache", "runs", "comparison")
    }
    campaigns = pl.read_csv(RESULTS / "campaigns.csv", try_parse_dates=True).with_columns(
        profile_text=pl.lit((RESULTS / "profile.yaml").read_text())
    )
    tables["campaigns"] = campaigns
    tables["requests"] = pl.read_parquet(RESULTS / "requests.parquet")
    tables["runs"] = tables["runs"].with_columns(pl.col("input_len", "output_len").cast(pl.Utf8))
    for name in ("comparison", "kv_cache"):
        if "input_len" in tables[name].columns:
            tables[name] = tables[name].with_columns(
                pl.col("input_len", "output_len").cast(pl.Utf8)
            )
    store.replace(tables, where={"campaign_id": CAMPAIGN})
    return store


@pytest.fixture(scope="module")
def report(warehouse, tmp_path_factory):
    return build(warehouse, CAMPAIGN, tmp_path_factory.mktemp("report"))


def test_figures_are_real_images(report):
    assert set(report.figures) >= {
        "frontier",
        "throughput",
        "throughput_per_gpu",
        "latency",
        "latency_cdf",
        "goodput",
        "kv_transfer",
    }
    for path in report.figures.values():
        _assert_real_image(path)


def _assert_real_image(path: Path) -> None:
    pixels = mpimg.imread(path)
    height, width = pixels.shape[:2]
    assert width >= 600 and height >= 300, path.name
    # Not blank: a plot has many distinct colours, a blank canvas one.
    assert len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)) > 50, path.name


def test_verdict_judges_disaggregation_against_replication(warehouse):
    comparison = warehouse.query("SELECT * FROM comparison WHERE campaign_id = ?", [CAMPAIGN])
    points = verdicts(comparison)
    assert len(points) == 6
    # Judged among arms on the same number of GPUs: single (1 GPU) is not a candidate.
    assert {p.throughput_winner for p in points} <= {"replicated", "disaggregated"}
    ratios = comparison.filter(pl.col("arm") == "disaggregated")["per_gpu_vs_replicated"]
    wins = int((ratios > 1).sum())
    assert headline(points).startswith(
        f"Disaggregation beat replication (per-GPU throughput) at {wins} of 6"
    )


def test_html_is_self_contained(report):
    html = report.html_path.read_text()
    assert html.count('src="data:image/png;base64,') == len(report.figures)
    assert "http://" not in html and "https://" not in html
    assert html.count("<tr>") >= 18  # 6 points x 3 arms in the comparison table
    assert yaml.safe_load((RESULTS / "profile.yaml").read_text())["name"] == "h100x2"


def test_a_slower_later_campaign_is_a_regression(warehouse, tmp_path):
    later = "h100x2-later"
    comparison = warehouse.query(
        "SELECT * FROM comparison WHERE campaign_id = ?", [CAMPAIGN]
    ).with_columns(
        campaign_id=pl.lit(later),
        # Replicated got 20% slower at one point: beyond a 10% threshold, nothing else moved.
        output_throughput_per_gpu=pl.when(
            (pl.col("arm") == "replicated")
            & (pl.col("concurrency") == 8)
            & (pl.col("input_len") == "512")
        )
        .then(pl.col("output_throughput_per_gpu") * 0.8)
        .otherwise(pl.col("output_throughput_per_gpu")),
    )
    campaigns = warehouse.query(
        "SELECT * FROM campaigns WHERE campaign_id = ?", [CAMPAIGN]
    ).with_columns(campaign_id=pl.lit(later), started_at=pl.col("started_at") + pl.duration(days=1))
    runs = warehouse.query("SELECT * FROM runs WHERE campaign_id = ?", [CAMPAIGN]).with_columns(
        campaign_id=pl.lit(later)
    )
    warehouse.replace(
        {"campaigns": campaigns, "comparison": comparison, "runs": runs},
        where={"campaign_id": later},
    )
    found = regressions(warehouse, later, 0.10)
    assert found.select("arm", "concurrency", "input_len", "metric").rows() == [
        ("replicated", 8, "512", "output_throughput_per_gpu")
    ]
    assert found["change"][0] == pytest.approx(-0.2)
    assert regressions(warehouse, later, 0.25).height == 0
    report = build(warehouse, later, tmp_path)
    assert "history" in report.figures  # two campaigns of the profile: the trend is drawn


def test_the_summary_leads_with_the_verdict_and_the_frontier(report):
    verdict = report.verdict_md
    assert verdict.startswith(f"## Campaign {CAMPAIGN}")
    assert verdict.index("Disaggregation beat replication") < verdict.index("Frontier: At 512/128")
    assert "gives the most output tokens/s per GPU" in verdict
    assert report.summary_md == f"{report.verdict_md}\n\n{report.details_md}"
    assert "| 512 | 128 | c=32 | disaggregated |" in report.details_md


@pytest.mark.browser
def test_report_opens_in_chromium(report):
    # Loaded from its CSV export, which has no goodput per tier: no tier verdicts.
    _check_page(report, "report.png", points=6, series=3, tiers=0)


@pytest.mark.browser
def test_variant_report_fits_the_page_in_chromium(variant_report):
    _check_page(variant_report[0], "report-variants.png", points=6, series=4, tiers=1)


def _check_page(report, screenshot: str, points: int, series: int, tiers: int) -> None:
    """At 1280 px wide: every figure loads, nothing scrolls sideways, the tier verdicts and the
    headline come before the frontier figure, and the table has a row per point and series."""
    with browser_page(width=1280) as page:
        page.goto(report.html_path.as_uri())
        loaded = page.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
        assert loaded == [True] * len(report.figures)
        assert page.locator("#comparison tbody tr").count() == points * series
        assert page.locator("#verdict li").count() == points
        expect(page.locator("#headline")).to_contain_text("beat replication")
        expect(page.locator("#frontier-sentence")).to_contain_text("tok/s per user")
        frontier = page.get_by_role("img", name="frontier")
        expect(frontier).to_be_visible()
        assert page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        for table in ("#comparison", "#hosts"):
            box = page.locator(table).bounding_box()
            assert box["x"] + box["width"] <= 1280, table
        tops = {
            name: page.locator(selector).bounding_box()["y"]
            for name, selector in [
                ("headline", "#headline"),
                ("frontier", "#figure-frontier"),
                ("other figures", "#figure-throughput_per_gpu"),
                ("comparison", "#comparison"),
            ]
        }
        assert page.locator("#tiers li").count() == tiers
        if tiers:
            tops = {"tiers": page.locator("#tiers").bounding_box()["y"], **tops}
        assert list(tops.values()) == sorted(tops.values()), tops
        page.screenshot(path=str(SCREENSHOTS / screenshot), full_page=True)
    assert (SCREENSHOTS / screenshot).stat().st_size > 10_000


def test_a_campaign_without_comparison_is_compared_from_its_runs(warehouse, tmp_path):
    fresh = "h100x2-no-comparison"
    runs = warehouse.query("SELECT * FROM runs WHERE campaign_id = ?", [CAMPAIGN]).with_columns(
        campaign_id=pl.lit(fresh)
    )
    campaigns = warehouse.query(
        "SELECT * FROM campaigns WHERE campaign_id = ?", [CAMPAIGN]
    ).with_columns(campaign_id=pl.lit(fresh))
    warehouse.replace({"campaigns": campaigns, "runs": runs}, where={"campaign_id": fresh})
    report = build(warehouse, fresh, tmp_path)
    assert "throughput_per_gpu" in report.figures
    assert "| 512 | 128 | c=32 | disaggregated |" in report.summary_md


@pytest.fixture(scope="module")
def variant_report(tmp_path_factory):
    """The report of the published campaign with two handoff variants, from its runs: the
    comparison, the goodput per SLO tier and the regime map are made as comparison_report
    makes them, with the link hardware_check found and the KV bytes predicted from the
    profile's model config."""
    store = Warehouse(tmp_path_factory.mktemp("variants") / "w.duckdb")
    tables = two_variant_campaign()
    store.replace(tables, where={"campaign_id": VARIANT_CAMPAIGN})
    runs = with_current_columns(tables["runs"])
    tiers = campaign_tiers(tables["campaigns"]["profile_text"][0], runs)
    store.replace(
        {
            "comparison": campaign_comparison(store, VARIANT_CAMPAIGN),
            "slo_goodput": goodput_by_tier(runs, tables["requests"], tiers),
            "regime_map": regime_map(runs, tables["requests"], resamples=200),
        },
        where={"campaign_id": VARIANT_CAMPAIGN},
    )
    return build(store, VARIANT_CAMPAIGN, tmp_path_factory.mktemp("variant-report")), store


def test_variants_are_series_of_their_own_in_the_report(variant_report):
    report, store = variant_report
    assert set(report.figures) >= {"throughput_per_gpu", "latency_cdf", "kv_transfer"}
    for path in report.figures.values():
        _assert_real_image(path)
    stored = store.query(
        "SELECT arm, variant, kv_link, kv_link_fraction FROM comparison "
        "WHERE campaign_id = ? AND concurrency = 8 AND input_len = '512'",
        [VARIANT_CAMPAIGN],
    )
    assert stored.sort("arm", "variant", nulls_last=True).select("arm", "variant").rows() == [
        ("disaggregated", "pull"),
        ("disaggregated", "push"),
        ("replicated", None),
        ("single", None),
    ]
    assert stored.drop_nulls("kv_link")["kv_link"].to_list() == ["h100 NVLink"] * 2
    predicted = store.query(
        "SELECT DISTINCT kv_predicted_bytes, kv_bytes_per_transfer FROM comparison "
        "WHERE campaign_id = ? AND input_len = '512' AND arm = 'disaggregated'",
        [VARIANT_CAMPAIGN],
    )
    # Predicted from the profile's model config, equal to what NIXL moved.
    assert predicted.rows() == [(67108864.0, 67108864.0)]
    summary = report.summary_md
    assert "disaggregated (pull) beat replication at" in summary
    assert "disaggregated (push) beat replication at" in summary
    assert "| 512 | 128 | c=8 | disaggregated (push) | 2 |" in summary
    assert "KV link between prefill and decode: h100 NVLink, 478.1 GB/s nominal" in summary
    html = report.html_path.read_text()
    assert html.count('<td class="setup">disaggregated (push)</td>') == 6
    assert html.count('<td class="setup">disaggregated (pull)</td>') == 6
    # The link is the same for every row: said once, above the table.
    assert "KV link between prefill and decode: h100 NVLink, 478.1 GB/s nominal" in html


def test_a_regression_names_its_variant(variant_report):
    _, store = variant_report
    later = f"{VARIANT_CAMPAIGN}-later"
    comparison = store.query("SELECT * FROM comparison WHERE campaign_id = ?", [VARIANT_CAMPAIGN])
    slower = (pl.col("variant") == "push") & (pl.col("concurrency") == 32)
    comparison = comparison.with_columns(
        campaign_id=pl.lit(later),
        output_throughput_per_gpu=pl.when(slower)
        .then(pl.col("output_throughput_per_gpu") * 0.8)
        .otherwise(pl.col("output_throughput_per_gpu")),
    )
    campaigns = store.query(
        "SELECT * FROM campaigns WHERE campaign_id = ?", [VARIANT_CAMPAIGN]
    ).with_columns(campaign_id=pl.lit(later), started_at=pl.col("started_at") + pl.duration(days=1))
    store.replace({"campaigns": campaigns, "comparison": comparison}, where={"campaign_id": later})
    found = regressions(store, later, 0.10)
    # Push against push only: pull and the baselines (variant null on both sides) did not move.
    assert sorted(found.select("arm", "variant", "input_len", "metric").rows()) == [
        ("disaggregated", "push", "2048", "output_throughput_per_gpu"),
        ("disaggregated", "push", "512", "output_throughput_per_gpu"),
    ]
    assert found["change"].to_list() == pytest.approx([-0.2, -0.2])


def test_export_compares_a_campaign_whose_report_never_ran(tmp_path):
    # Arms materialized one by one on an offline host leave runs but no comparison behind.
    from pdpipeline.cli import main

    store = Warehouse(tmp_path / "w.duckdb")
    store.replace(two_variant_campaign(), where={"campaign_id": VARIANT_CAMPAIGN})
    main(["export", "--warehouse", str(store.path), "--out", str(tmp_path / "out")])
    stored = store.query(
        "SELECT count(*) AS n, count(kv_link) AS linked FROM comparison WHERE campaign_id = ?",
        [VARIANT_CAMPAIGN],
    )
    assert stored.rows() == [(24, 12)]
    # The goodput per SLO tier and the regime map are stored with it, as comparison_report does.
    for table in ("slo_goodput", "regime_map"):
        rows = store.query(
            f"SELECT count(*) AS n FROM {table} WHERE campaign_id = ?", [VARIANT_CAMPAIGN]
        )
        assert rows["n"][0] > 0, table
    exported = pl.read_csv(tmp_path / "out" / "handoff_variants.csv")
    assert exported["variant"].to_list() == ["pull", "push"]
    assert (tmp_path / "out" / "report.html").stat().st_size > 0


# --- a campaign of two layouts and two engine variants (tests/report/constructed.py) ---------

LAYOUTS_CAMPAIGN = "layouts"


def store_layouts_campaign(store: Warehouse, campaign_id: str, day: int = 27) -> None:
    """The constructed campaign's runs and requests, and the tables its report derives."""
    runs, requests = layouts_campaign()
    tables = {
        "campaigns": pl.DataFrame(
            {
                "campaign_id": [campaign_id],
                "started_at": [datetime(2026, 11, day, tzinfo=UTC)],
                "profile_name": ["layouts"],
                "profile_sha256": ["0"],
                # Not a profile of this version: judged at the limits its runs recorded.
                "profile_text": ["name: layouts\n"],
            }
        ),
        "runs": runs,
        "requests": requests,
    }
    tables = {
        name: frame.with_columns(campaign_id=pl.lit(campaign_id)) for name, frame in tables.items()
    }
    store.replace(tables, where={"campaign_id": campaign_id})
    store_analysis(store, campaign_id)


@pytest.fixture(scope="module")
def layouts_report(tmp_path_factory):
    store = Warehouse(tmp_path_factory.mktemp("layouts") / "w.duckdb")
    store_layouts_campaign(store, LAYOUTS_CAMPAIGN)
    return build(store, LAYOUTS_CAMPAIGN, tmp_path_factory.mktemp("layouts-report")), store


def test_the_report_names_every_layout_and_engine_variant(layouts_report):
    report, store = layouts_report
    for path in report.figures.values():
        _assert_real_image(path)
    stored = store.query(
        "SELECT layout, engine_variant, per_gpu_vs_replicated FROM comparison "
        "WHERE campaign_id = ? AND arm = 'disaggregated' AND variant = 'push'",
        [LAYOUTS_CAMPAIGN],
    )
    assert dict(
        (f"{layout} {engine}", ratio) for layout, engine, ratio in stored.rows()
    ) == pytest.approx(
        {
            "1P1D block16": 3.1 / 3.0,
            "1P1D block128": 3.35 / 2.8,
            "3P1D block16": 3.6 / 2.5,
            "3P1D block128": 3.9 / 3.2,
        }
    )
    verdict = report.verdict_md
    # The default tier (TTFT <= 500 ms): 3P1D misses it, 1P1D with push and block128 wins.
    assert "at 512/64, disaggregated 1P1D (push) [block128] serves most" in verdict
    assert "against replicated 2R [block16] on as many devices: 1.12x [" in verdict
    assert "At 512/64, disaggregated 3P1D (push) [block128] gives the most" in verdict
    assert "| 512 | 64 | c=8 | replicated 4R [block128] | 4 |" in report.details_md
    html = report.html_path.read_text()
    for series in GOODPUT:
        assert html.count(f'<td class="setup">{series.label}</td>') == 1, series
    regime = store.query("SELECT * FROM regime_map WHERE campaign_id = ?", [LAYOUTS_CAMPAIGN])
    assert set(regime["winner_layout"].drop_nulls()) <= {"1P1D", "3P1D", "2R", "4R"}
    assert regime["winner_engine_variant"].drop_nulls().len() > 0


def test_a_regression_is_of_one_layout_engine_and_handoff(layouts_report):
    _, store = layouts_report
    later = f"{LAYOUTS_CAMPAIGN}-later"
    store_layouts_campaign(store, later, day=28)
    slower = Series("disaggregated", "3P1D", "block128", "push").rows()
    comparison = store.query(
        "SELECT * FROM comparison WHERE campaign_id = ?", [later]
    ).with_columns(
        output_throughput_per_gpu=pl.when(slower)
        .then(pl.col("output_throughput_per_gpu") * 0.8)
        .otherwise(pl.col("output_throughput_per_gpu"))
    )
    store.replace({"comparison": comparison}, where={"campaign_id": later})
    found = regressions(store, later, 0.10)
    # The same handoff in 3P1D with block16, and in 1P1D with block128, did not move.
    assert found.select("arm", "layout", "engine_variant", "variant", "metric").rows() == [
        ("disaggregated", "3P1D", "block128", "push", "output_throughput_per_gpu")
    ]
    assert found["change"].to_list() == pytest.approx([-0.2])


@pytest.mark.browser
def test_layouts_report_fits_the_page_in_chromium(layouts_report):
    _check_page(layouts_report[0], "report-layouts.png", points=1, series=14, tiers=1)


def test_each_layout_gets_the_link_between_its_own_hosts(tmp_path):
    # The h200x2 profile with a second host: 1P1D takes both GPUs of the first (its NVLink),
    # 3P1D reaches into the second (their network, the slower end's rate).
    data = yaml.safe_load((ROOT / "profiles" / "h200x2.yaml").read_text())
    first = data["hosts"][0]["name"]
    data["hosts"].append(
        data["hosts"][0] | {"name": "b", "address": "10.0.0.2", "reach": "ssh", "ssh": {}}
    )
    data["arms"]["pool"] = [{"host": h, "devices": [d]} for h in (first, "b") for d in (0, 1)]
    data["arms"]["disaggregated"]["layouts"] = ["1P1D", "3P1D"]
    hosts = pl.DataFrame(
        {
            "campaign_id": [LAYOUTS_CAMPAIGN] * 2,
            "host": [first, "b"],
            "device_kind": ["cuda"] * 2,
            "nvlink_gbit_per_s": [3600.0] * 2,
            "link_gbit_per_s": [400.0, 200.0],
        }
    )
    store = Warehouse(tmp_path / "w.duckdb")
    store_layouts_campaign(store, LAYOUTS_CAMPAIGN)
    campaigns = store.query("SELECT * FROM campaigns").with_columns(
        profile_text=pl.lit(yaml.safe_dump(data))
    )
    store.replace({"campaigns": campaigns, "hosts": hosts}, where={"campaign_id": LAYOUTS_CAMPAIGN})
    store_analysis(store, LAYOUTS_CAMPAIGN)
    moved = store.query(
        "SELECT DISTINCT layout, kv_link, kv_link_gbyte_per_s FROM comparison "
        "WHERE campaign_id = ? AND arm = 'disaggregated' ORDER BY layout",
        [LAYOUTS_CAMPAIGN],
    )
    assert moved.rows() == [
        ("1P1D", f"{first} NVLink", 450.0),
        ("3P1D", f"{first}–b network", 25.0),
    ]
    report = build(store, LAYOUTS_CAMPAIGN, tmp_path / "report")
    # 20 transfers of 1 MB in 20 ms: 1 GB/s, of 450 and of 25.
    assert (
        f"KV links between prefill and decode: 1P1D: {first} NVLink, 450.0 GB/s nominal (the KV "
        f"transfers achieved 0.2% to 0.2% of it); 3P1D: {first}–b network, 25.0 GB/s nominal "
        "(the KV transfers achieved 4.0% to 4.0% of it)."
    ) in report.details_md
