"""The throughput-interactivity frontier: the front per series (layouts and engine variants
too), the leader per interactivity level, and the warehouse's `frontier` view against the
Python function."""

from __future__ import annotations

import polars as pl
import pytest

from pdpipeline.report.analysis import campaign_comparison
from pdpipeline.report.frontier import frontier, frontier_sentence, leaders
from pdpipeline.report.series import Series
from pdpipeline.warehouse.store import Warehouse
from tests.report.constructed import GOODPUT, devices, layouts_campaign
from tests.support.published import CAMPAIGN, two_variant_campaign


def points(series: dict[tuple[str, str | None], list[tuple[int, float, float]]], gpus: int = 2):
    """A comparison of one shape: per series, (concurrency, TPOT p50 ms, tokens/s per GPU)."""
    return pl.DataFrame(
        [
            {
                "arm": arm,
                "variant": variant,
                "input_len": "512",
                "output_len": "128",
                "concurrency": c,
                "request_rate": None,
                "gpus": gpus,
                "tpot_p50_ms": tpot,
                "output_throughput_per_gpu": y,
            }
            for (arm, variant), rows in series.items()
            for c, tpot, y in rows
        ],
        schema_overrides={"variant": pl.Utf8, "request_rate": pl.Float64},
    )


def on_front(front: pl.DataFrame) -> dict[int, bool]:
    return dict(front.select("concurrency", "on_front").iter_rows())


def test_a_point_beaten_on_both_axes_is_off_the_front():
    # c=8 is slower per user than c=4 and makes fewer tokens/s per GPU: dominated.
    front = frontier(points({("replicated", None): [(1, 5.0, 100), (4, 8.0, 400), (8, 10.0, 300)]}))
    assert on_front(front) == {1: True, 4: True, 8: False}
    assert front.filter(pl.col("concurrency") == 4)["tok_s_per_user"][0] == pytest.approx(125.0)


def test_ties_stay_on_the_front_and_equal_on_one_axis_is_enough_to_lose():
    front = frontier(
        points(
            {
                # c=1 and c=2 are the same point: neither beats the other.
                # c=4 matches c=8's interactivity with fewer tokens/s per GPU: beaten.
                ("replicated", None): [(1, 5.0, 100), (2, 5.0, 100), (4, 8.0, 300), (8, 8.0, 400)]
            }
        )
    )
    assert on_front(front) == {1: True, 2: True, 4: False, 8: True}


def test_a_point_of_another_series_does_not_dominate():
    front = frontier(
        points(
            {
                ("replicated", None): [(8, 10.0, 300)],
                ("disaggregated", "push"): [(8, 5.0, 900)],
                ("disaggregated", "pull"): [(8, 6.0, 800)],
            }
        )
    )
    assert front["on_front"].all()


def test_runs_are_averaged_over_valid_repeats():
    runs = points({("replicated", None): [(8, 10.0, 300), (8, 30.0, 500), (8, 99.0, 1)]})
    runs = runs.with_columns(valid=pl.Series([True, True, False]))
    front = frontier(runs)
    assert front.select("tok_s_per_user", "output_throughput_per_gpu").rows() == [(50.0, 400.0)]


def test_the_leader_flips_where_the_fronts_cross():
    # Replicated reaches the most tokens/s per GPU only by letting TPOT reach 20 ms; push keeps
    # TPOT at 10 ms under that load, so it leads once a user needs more than 50 tok/s.
    comparison = points(
        {
            ("replicated", None): [(1, 1000 / 150, 200), (8, 10.0, 600), (32, 20.0, 1000)],
            ("disaggregated", "push"): [(1, 4.0, 90), (8, 1000 / 150, 400), (32, 10.0, 700)],
        }
    )
    lead = leaders(comparison)
    assert lead.select("above", "up_to", "arm", "variant").rows() == [
        (None, 50.0, "replicated", None),
        (50.0, 250.0, "disaggregated", "push"),
    ]
    assert frontier_sentence(comparison) == (
        "At 512/128 (setups on 2 GPUs), at more than 50 tok/s per user disaggregated (push) "
        "gives the most output tokens/s per GPU; at 50 or less, replicated."
    )


def test_a_series_that_leads_everywhere_gets_one_clause():
    comparison = points(
        {
            ("replicated", None): [(1, 5.0, 100), (8, 10.0, 600)],
            ("disaggregated", "pull"): [(1, 6.0, 90), (8, 12.0, 500)],
        }
    )
    assert frontier_sentence(comparison) == (
        "At 512/128 (setups on 2 GPUs), replicated gives the most output tokens/s per GPU at "
        "every interactivity measured (up to 200 tok/s per user)."
    )


def test_a_lead_over_a_sliver_of_interactivity_is_folded_into_its_neighbours():
    # Push's c=32 is 1% more interactive than replicated's, with fewer tokens/s per GPU: the
    # span it leads (137 to 138 tok/s per user) is within TPOT's run-to-run spread.
    comparison = points(
        {
            ("replicated", None): [(8, 1000 / 150, 560), (32, 1000 / 137, 1840)],
            ("disaggregated", "push"): [(8, 1000 / 145, 500), (32, 1000 / 138, 1470)],
        }
    )
    assert leaders(comparison).select("above", "up_to", "arm").rows() == [
        (None, pytest.approx(150.0), "replicated")
    ]


def test_single_does_not_compete_with_setups_on_more_gpus():
    # Per GPU, one instance at load c is what each of two replicas does at 2c: where the two
    # sweeps happened to sample says nothing of the architecture.
    comparison = pl.concat(
        [
            points({("single", None): [(8, 5.0, 5000)]}, gpus=1),
            points(
                {
                    ("replicated", None): [(8, 5.0, 600)],
                    ("disaggregated", "push"): [(8, 5.0, 500)],
                }
            ),
        ]
    )
    assert leaders(comparison)["arm"].to_list() == ["replicated"]


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Warehouse:
    store = Warehouse(tmp_path_factory.mktemp("frontier") / "w.duckdb")
    store.replace(two_variant_campaign(), where={"campaign_id": CAMPAIGN})
    return store


def test_the_view_agrees_with_the_function_on_the_published_campaign(published):
    keys = ["arm", "variant", "input_len", "output_len", "concurrency", "request_rate"]
    columns = [*keys, "tok_s_per_user", "output_throughput_per_gpu", "on_front"]
    view = published.query("SELECT * FROM frontier WHERE campaign_id = ?", [CAMPAIGN])
    runs = published.query("SELECT * FROM runs WHERE campaign_id = ?", [CAMPAIGN])
    comparison = campaign_comparison(published, CAMPAIGN)
    assert view.height == 24  # 4 series x 2 shapes x 3 loads
    expected = view.select(columns).sort(keys, nulls_last=True)
    for computed in (frontier(runs), frontier(comparison)):
        got = computed.select(columns).sort(keys, nulls_last=True)
        assert got.select(*keys, "on_front").rows() == expected.select(*keys, "on_front").rows()
        for axis in ("tok_s_per_user", "output_throughput_per_gpu"):
            assert got[axis].to_list() == pytest.approx(expected[axis].to_list(), rel=1e-12)


def test_the_view_marks_a_dominated_point(published):
    # Every published point is on its front: a copy of the campaign with one replicated point
    # made worse on both axes checks that the view takes it off.
    worse = "frontier-dominated"
    runs = published.query("SELECT * FROM runs WHERE campaign_id = ?", [CAMPAIGN])
    hit = (pl.col("arm") == "replicated") & (pl.col("concurrency") == 8)
    runs = runs.with_columns(
        campaign_id=pl.lit(worse),
        tpot_p50_ms=pl.when(hit).then(1000.0).otherwise(pl.col("tpot_p50_ms")),
        output_throughput_per_gpu=pl.when(hit)
        .then(1.0)
        .otherwise(pl.col("output_throughput_per_gpu")),
    )
    published.replace({"runs": runs}, where={"campaign_id": worse})
    off = published.query(
        "SELECT arm, input_len, concurrency FROM frontier "
        "WHERE campaign_id = ? AND NOT on_front ORDER BY ALL",
        [worse],
    )
    assert off.rows() == [("replicated", "2048", 8), ("replicated", "512", 8)]
    assert frontier(runs).filter(~pl.col("on_front")).height == 2


# --- layouts and engine variants -------------------------------------------------------------

R2_16 = Series("replicated", "2R", "block16")
R4_128 = Series("replicated", "4R", "block128")
P1_16 = Series("disaggregated", "1P1D", "block16", "push")
P1_128 = Series("disaggregated", "1P1D", "block128", "push")
P3_128 = Series("disaggregated", "3P1D", "block128", "push")


def layout_points(series: dict[Series, list[tuple[int, float, float]]]) -> pl.DataFrame:
    """A comparison of one shape: per series (on its layout's devices), (concurrency, TPOT p50
    ms, tokens/s per GPU)."""
    return pl.concat(
        [
            points({(s.arm, s.variant): rows}, gpus=devices(s)).with_columns(
                layout=pl.lit(s.layout), engine_variant=pl.lit(s.engine_variant)
            )
            for s, rows in series.items()
        ],
        how="diagonal",
    )


def test_series_of_other_layouts_and_engines_keep_fronts_of_their_own():
    # 4R beats 2R on both axes and block128 beats block16: other series, so all on their fronts;
    # 2R's c=8 is beaten by its own c=4 and off.
    front = frontier(
        layout_points(
            {
                R2_16: [(4, 8.0, 400), (8, 10.0, 300)],
                R4_128: [(8, 5.0, 900)],
                P1_16: [(8, 6.0, 500)],
                P1_128: [(8, 5.5, 600)],
            }
        )
    )
    assert front.height == 5
    off = front.filter(~pl.col("on_front"))
    assert off.select("layout", "engine_variant", "concurrency").rows() == [("2R", "block16", 8)]
    assert set(front["gpus"]) == {2, 4}


def test_the_leader_is_named_by_layout_and_engine_among_setups_on_any_devices():
    comparison = layout_points(
        {
            R2_16: [(8, 10.0, 500)],
            R4_128: [(8, 10.0, 600), (32, 20.0, 1000)],
            P1_128: [(8, 5.0, 450)],
            P3_128: [(8, 4.0, 550), (32, 1000 / 150, 800)],
        }
    )
    lead = leaders(comparison)
    assert lead.select("above", "up_to", "arm", "layout", "engine_variant", "variant").rows() == [
        (None, 50.0, "replicated", "4R", "block128", None),
        (50.0, 250.0, "disaggregated", "3P1D", "block128", "push"),
    ]
    assert lead["gpus"].null_count() == 2  # setups on two and four devices compete
    assert frontier_sentence(comparison) == (
        "At 512/128, at more than 50 tok/s per user disaggregated 3P1D (push) [block128] gives "
        "the most output tokens/s per GPU; at 50 or less, replicated 4R [block128]."
    )


def test_the_view_keeps_layouts_and_engines_apart(tmp_path):
    runs, _ = layouts_campaign()
    store = Warehouse(tmp_path / "w.duckdb")
    store.replace({"runs": runs}, where={"campaign_id": "c"})
    keys = ["arm", "layout", "engine_variant", "variant", "concurrency"]
    view = store.query("SELECT * FROM frontier WHERE campaign_id = 'c'").sort(keys)
    ours = frontier(runs).sort(keys)
    assert view.height == ours.height == len(GOODPUT)
    assert (
        view.select(*keys, "gpus", "on_front").rows()
        == ours.select(*keys, "gpus", "on_front").rows()
    )
    assert view["output_throughput_per_gpu"].to_list() == pytest.approx(
        ours["output_throughput_per_gpu"].to_list()
    )
