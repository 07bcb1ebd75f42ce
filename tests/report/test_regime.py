"""The regime map: the winner per TTFT x TPOT cell, its paired bootstrap interval, the heatmap,
the warehouse table and the nightly check on a moved boundary; on constructed runs (one campaign
with layouts and engine variants) and on the published pull-vs-push campaign."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime

import dagster as dg
import matplotlib.image as mpimg
import numpy as np
import polars as pl
import pytest

from pdpipeline.defs.report import _regression_text, comparison_report
from pdpipeline.defs.resources import WarehouseResource
from pdpipeline.profile import SloTier
from pdpipeline.report.columns import with_current_columns
from pdpipeline.report.compare import compare
from pdpipeline.report.figures.regime import regime_heatmap
from pdpipeline.report.regime import LATTICE, limit_grid, regime_map, winner_label
from pdpipeline.report.regression import regime_changes
from pdpipeline.report.slo import best_by_tier, goodput_by_tier
from pdpipeline.warehouse.rows import RegimeMapRow, columns
from pdpipeline.warehouse.store import Warehouse
from tests.report.constructed import PUSH, REPLICATED, campaign, layouts_campaign, request
from tests.support.published import CAMPAIGN, two_variant_campaign

SINGLE = ("single", None)


def test_the_grid_spans_the_values_on_a_fixed_lattice():
    values = np.random.default_rng(1).lognormal(mean=math.log(200), sigma=1.0, size=500)
    grid = limit_grid(values.tolist())
    assert len(grid) == 8 and grid == sorted(grid)
    steps = [math.log2(v) * LATTICE for v in grid]
    assert all(s == pytest.approx(round(s)) for s in steps)  # lattice points
    assert len({round(b - a) for a, b in itertools.pairwise(steps)}) == 1  # evenly spaced
    low, high = np.percentile(values, [5, 95])
    assert grid[0] <= low and grid[-1] >= high
    assert grid[0] < np.median(values) < grid[-1]
    # Latencies a few percent apart: the same cells, so two campaigns' maps line up.
    assert limit_grid((values * 1.03).tolist()) == grid
    assert limit_grid([7.0] * 10, cells=4) == [2 ** (k / LATTICE) for k in (11, 12, 13, 14)]


def constructed() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Replicated answers fast but decodes slowly; push starts late and decodes fast. Each at
    two loads, two repeats; single on one GPU serves most per GPU but is not on as many."""
    fast_start, fast_decode = request(50, 20), request(400, 5)
    runs = []
    for repeat in (0, 1):
        runs += [
            (REPLICATED, 1, repeat, 10.0, [fast_start] * 10),  # 0.5 req/s per GPU
            (REPLICATED, 8, repeat, 2.0, [fast_start] * 10),  # 2.5
            (PUSH, 1, repeat, 10.0, [fast_decode] * 10),  # 0.5
            (PUSH, 8, repeat, 5.0, [fast_decode] * 10),  # 1.0
        ]
    runs_frame, requests = campaign(runs)
    single, single_requests = campaign([(SINGLE, 8, 0, 1.0, [request(10, 1)] * 10)], gpus=1)
    single = single.with_columns(run_id=pl.lit("single-0"))
    single_requests = single_requests.with_columns(run_id=pl.lit("single-0"))
    return pl.concat([runs_frame, single]), pl.concat([requests, single_requests])


def cells(frame: pl.DataFrame) -> dict[tuple[float, float], dict]:
    return {(r["ttft_ms"], r["tpot_ms"]): r for r in frame.iter_rows(named=True)}


def test_the_winner_flips_where_the_limits_cross_each_setups_latencies():
    runs, requests = constructed()
    frame = regime_map(runs, requests, ttft_ms=[100, 1000], tpot_ms=[10, 30], resamples=200)
    assert frame.columns == columns(RegimeMapRow)
    assert frame.height == 4 and set(frame["input_len"]) == {"512"}
    by_cell = cells(frame)
    # Strict TTFT, loose TPOT: only replicated meets it.
    assert winner_label(by_cell[100, 30]) == "replicated"
    # Loose TTFT, strict TPOT: only push meets it.
    assert winner_label(by_cell[1000, 10]) == "disaggregated (push)"
    assert by_cell[1000, 10]["winner_goodput_per_gpu"] == pytest.approx(1.0)
    assert by_cell[1000, 10]["baseline_goodput_per_gpu"] == 0.0
    # Both loose: both meet it at every load, and replicated serves more at its best.
    assert winner_label(by_cell[1000, 30]) == "replicated"
    assert by_cell[1000, 30]["difference"] == pytest.approx(1.0 - 2.5)
    # Both strict: nobody; no contest is no tie either.
    assert winner_label(by_cell[100, 10]) is None and by_cell[100, 10]["tie"] is None
    for cell in ((100, 30), (1000, 10), (1000, 30)):
        row = by_cell[cell]
        assert row["challenger_arm"] == "disaggregated" and row["tie"] is False
        assert row["difference_low"] <= row["difference"] <= row["difference_high"]
    # Single, on one GPU, is no candidate against setups on two.
    assert "single" not in frame["winner_arm"].drop_nulls().to_list()


def test_a_difference_within_the_repeats_spread_is_a_tie():
    meet = request(50, 5)
    runs, requests = campaign(
        [
            (REPLICATED, 8, 0, 10 / 2 / 10.0, [meet] * 10),  # 10.0 req/s per GPU
            (REPLICATED, 8, 1, 10 / 2 / 10.6, [meet] * 10),  # 10.6
            (PUSH, 8, 0, 10 / 2 / 10.3, [meet] * 10),
            (PUSH, 8, 1, 10 / 2 / 10.4, [meet] * 10),
        ]
    )
    (row,) = regime_map(runs, requests, ttft_ms=[100], tpot_ms=[10], resamples=400).rows(named=True)
    assert winner_label(row) == "disaggregated (push)"
    assert row["difference"] == pytest.approx(10.35 - 10.3)
    assert row["difference_low"] < 0 < row["difference_high"] and row["tie"] is True


def test_the_pairing_cancels_the_requests_shared_variation():
    # Both setups miss the same requests (the same seeded prompts): resampled together, their
    # difference does not move, though each one's goodput does.
    slow = [request(50, 5)] * 8 + [request(900, 5)] * 2
    runs, requests = campaign([(REPLICATED, 8, 0, 2.0, slow), (PUSH, 8, 0, 1.0, slow)])
    (row,) = regime_map(runs, requests, ttft_ms=[100], tpot_ms=[10], attainment=0.5).rows(
        named=True
    )
    assert row["difference"] == pytest.approx(8 / 1.0 / 2 - 8 / 2.0 / 2)
    # The same share met in every draw: the difference scales with it, never crosses 0.
    assert 0 < row["difference_low"] <= row["difference"] <= row["difference_high"]
    assert row["tie"] is False


def test_only_requests_in_the_steady_window_count_over_its_length():
    warming, steady = request(900, 5, in_window=False), request(50, 5, in_window=True)
    runs, requests = campaign(
        [(REPLICATED, 8, 0, 10.0, [warming] * 4 + [steady] * 8), (PUSH, 8, 0, 10.0, [steady] * 8)],
        window_s=[2.0, None],  # push's run from before the window: its whole duration
    )
    frame = regime_map(runs, requests, ttft_ms=[100], tpot_ms=[10], resamples=50)
    (row,) = frame.rows(named=True)
    assert row["baseline_goodput_per_gpu"] == pytest.approx(8 / 2.0 / 2)
    assert row["challenger_goodput_per_gpu"] == pytest.approx(8 / 10.0 / 2)
    assert winner_label(row) == "replicated"


def test_a_cell_agrees_with_the_tier_of_the_same_limits():
    published = two_variant_campaign()
    runs = with_current_columns(published["runs"])
    frame = regime_map(runs, published["requests"], ttft_ms=[2000], tpot_ms=[10], resamples=100)
    tier = goodput_by_tier(runs, published["requests"], {"s": SloTier(ttft_ms=2000, tpot_ms=10)})
    best = best_by_tier(tier)
    for row in frame.iter_rows(named=True):
        winner = best.filter(
            (pl.col("input_len") == row["input_len"])
            & (pl.col("arm") == row["winner_arm"])
            & pl.col("variant").eq_missing(pl.lit(row["winner_variant"], dtype=pl.Utf8))
        )
        assert row["winner_goodput_per_gpu"] == pytest.approx(winner["goodput_per_gpu"][0])


@pytest.fixture(scope="module")
def published_map() -> pl.DataFrame:
    published = two_variant_campaign()
    return regime_map(with_current_columns(published["runs"]), published["requests"])


def test_the_published_map_has_cells_where_push_wins_and_none_where_pull_does(published_map):
    assert published_map.height == 2 * 64
    winners = {winner_label(r) for r in published_map.iter_rows(named=True)}
    assert winners == {None, "replicated", "disaggregated (push)"}
    push = published_map.filter(
        (pl.col("winner_variant") == "push") & ~pl.col("tie").fill_null(True)
    )
    # Push wins beyond the spread only on long prompts, at a strict TPOT (its decode GPU free
    # of prefills) and a TTFT loose enough for its queued prefills: the TaiChi regime.
    assert set(push["input_len"]) == {"2048"}
    assert push["tpot_ms"].max() < 13.6  # replicated's TPOT p50 at c=32
    assert push["ttft_ms"].min() > 1000  # push's TTFT p50 at c=32 is 1.08-1.10 s
    # The loosest cell of each shape is replicated's, beyond the spread.
    for _, shape in published_map.group_by("input_len"):
        loosest = shape.filter(
            (pl.col("ttft_ms") == shape["ttft_ms"].max())
            & (pl.col("tpot_ms") == shape["tpot_ms"].max())
        ).row(0, named=True)
        assert winner_label(loosest) == "replicated" and loosest["tie"] is False


def test_the_heatmap_is_a_real_image(published_map, tmp_path):
    path = regime_heatmap(published_map, tmp_path / "regime.png")
    pixels = mpimg.imread(path)
    height, width = pixels.shape[:2]
    assert width >= 900 and height >= 400
    assert len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)) > 50


def test_the_nightly_check_flags_a_cell_that_changed_hands(published_map, tmp_path):
    store = Warehouse(tmp_path / "w.duckdb")
    published = two_variant_campaign()
    store.replace(published, where={"campaign_id": CAMPAIGN})
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("campaign", [CAMPAIGN])
        result = dg.materialize(
            [comparison_report],
            partition_key=CAMPAIGN,
            instance=instance,
            resources={"warehouse": WarehouseResource(path=str(store.path))},
        )
    assert result.success
    stored = store.query("SELECT * FROM regime_map WHERE campaign_id = ?", [CAMPAIGN])
    assert stored.height == published_map.height
    assert stored.sort(columns(RegimeMapRow)[1:6]).equals(
        published_map.sort(columns(RegimeMapRow)[1:6])
    )
    goodput = store.query("SELECT * FROM slo_goodput WHERE campaign_id = ?", [CAMPAIGN])
    assert set(goodput["tier"]) == {"default"} and goodput.height == 48
    # The first campaign of its profile: nothing to regress against.
    assert regime_changes(store, CAMPAIGN).height == 0

    # A night later the boundary moved: the cells push won, replicated wins now.
    later = f"{CAMPAIGN}-later"
    pushed = stored.select(
        (pl.col("winner_variant") == "push") & ~pl.col("tie").fill_null(True)
    ).to_series()
    regime = stored.with_columns(
        campaign_id=pl.lit(later),
        winner_arm=pl.when(pushed).then(pl.lit("replicated")).otherwise(pl.col("winner_arm")),
        winner_variant=pl.when(pushed).then(pl.lit(None)).otherwise(pl.col("winner_variant")),
    )
    copies = {
        table: store.query(f"SELECT * FROM {table} WHERE campaign_id = ?", [CAMPAIGN]).with_columns(
            campaign_id=pl.lit(later)
        )
        for table in ("campaigns", "comparison")
    }
    copies["campaigns"] = copies["campaigns"].with_columns(
        started_at=pl.col("started_at") + pl.duration(days=1)
    )
    store.replace(copies | {"regime_map": regime}, where={"campaign_id": later})
    moved = regime_changes(store, later)
    assert moved.height == pushed.sum() > 0
    assert set(moved["winner_variant_before"]) == {"push"}
    assert set(moved["winner_arm"]) == {"replicated"} and set(moved["previous"]) == {CAMPAIGN}
    first = moved.row(0, named=True)
    assert _regression_text(pl.DataFrame(), moved, 0.1) == (
        f"{moved.height} regime map cell(s) changed winner against {CAMPAIGN}, e.g. at "
        f"{first['input_len']}/{first['output_len']}, TTFT <= {round(first['ttft_ms'], 1):g} ms "
        f"and TPOT <= {round(first['tpot_ms'], 1):g} ms: disaggregated (push) before, "
        "replicated now"
    )
    # A cell called a tie on either night has no winner to lose.
    tied = regime.with_columns(tie=pl.when(pushed).then(True).otherwise(pl.col("tie")))
    store.replace({"regime_map": tied}, where={"campaign_id": later})
    assert regime_changes(store, later).height == 0


# --- layouts and engine variants (tests/report/constructed.py) -------------------------------


@pytest.fixture(scope="module")
def layouts_map() -> pl.DataFrame:
    runs, requests = layouts_campaign()
    return regime_map(runs, requests, ttft_ms=[100, 500, 1000], tpot_ms=[10, 30], resamples=200)


def test_cells_name_the_winning_layout_and_engine_variant(layouts_map):
    by_cell = cells(layouts_map)
    # Everyone meets it: 3P1D push with 128-token blocks serves most per GPU.
    loose = by_cell[1000, 30]
    assert (loose["winner_layout"], loose["winner_engine_variant"]) == ("3P1D", "block128")
    assert winner_label(loose) == "disaggregated 3P1D (push) [block128]"
    assert (loose["challenger_layout"], loose["challenger_engine_variant"]) == ("3P1D", "block128")
    # Against the best replicated series on four devices: 4R with 128-token blocks.
    assert loose["baseline_goodput_per_gpu"] == pytest.approx(3.2)
    assert loose["difference"] == pytest.approx(3.9 - 3.2) and loose["tie"] is False
    # Only the fast-starting replicas meet a 100 ms TTFT: the best of them, over both sizes.
    assert winner_label(by_cell[100, 30]) == "replicated 4R [block128]"
    # 3P1D's 800 ms TTFT misses 500 ms: 1P1D wins, against 2R (its best engine, block16) and
    # not 4R, which serves more per GPU but on other devices.
    interactive = by_cell[500, 30]
    assert winner_label(interactive) == "disaggregated 1P1D (push) [block128]"
    assert interactive["challenger_layout"] == "1P1D"
    assert interactive["baseline_goodput_per_gpu"] == pytest.approx(3.0)
    assert interactive["difference"] == pytest.approx(3.35 - 3.0)
    # Single serves most per GPU of all, on one device: no candidate.
    assert "single" not in layouts_map["winner_arm"].drop_nulls().to_list()


def test_the_heatmap_colours_each_layout_of_its_own(layouts_map, tmp_path):
    path = regime_heatmap(layouts_map, tmp_path / "regime.png")
    assert mpimg.imread(path).shape[1] >= 500


def test_a_cell_won_by_another_layout_is_a_moved_boundary(layouts_map, tmp_path):
    store = Warehouse(tmp_path / "w.duckdb")
    runs, _ = layouts_campaign()
    comparison = compare(runs)
    later = "c-later"
    moved = (pl.col("ttft_ms") == 1000) & (pl.col("tpot_ms") == 30)
    maps = {
        "c": layouts_map.with_columns(campaign_id=pl.lit("c")),
        # The same arm, engine and handoff variants win, in another layout.
        later: layouts_map.with_columns(
            campaign_id=pl.lit(later),
            winner_layout=pl.when(moved).then(pl.lit("1P1D")).otherwise(pl.col("winner_layout")),
        ),
    }
    for i, (campaign_id, regime) in enumerate(maps.items()):
        store.replace(
            {
                "campaigns": pl.DataFrame(
                    {
                        "campaign_id": [campaign_id],
                        "started_at": [datetime(2026, 11, 27 + i, tzinfo=UTC)],
                        "profile_name": ["layouts"],
                        "profile_sha256": ["0"],
                        "profile_text": [""],
                    }
                ),
                "comparison": comparison.with_columns(campaign_id=pl.lit(campaign_id)),
                "regime_map": regime,
            },
            where={"campaign_id": campaign_id},
        )
    (cell,) = regime_changes(store, later).rows(named=True)
    assert (cell["winner_layout_before"], cell["winner_layout"]) == ("3P1D", "1P1D")
    assert cell["winner_engine_variant"] == cell["winner_engine_variant_before"] == "block128"


def test_runs_with_null_layouts_and_engines_map_as_runs_without_them():
    runs, requests = constructed()
    grid = {"ttft_ms": [100, 1000], "tpot_ms": [10, 30], "resamples": 100}
    before = regime_map(runs.drop("layout", "engine_variant"), requests, **grid)
    assert regime_map(runs, requests, **grid).equals(before)
    assert before["winner_layout"].null_count() == before.height
