"""SLO tiers: the profile's tiers, attainment and goodput per run and tier, and the verdict per
tier; on constructed runs with known answers (one of them with layouts and engine variants) and
on the published pull-vs-push campaign."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from pdpipeline.errors import ProfileError
from pdpipeline.profile import SloTier, load_profile
from pdpipeline.report.columns import with_current_columns
from pdpipeline.report.series import Series
from pdpipeline.report.slo import best_by_tier, campaign_tiers, goodput_by_tier
from pdpipeline.report.verdict import tier_verdicts
from pdpipeline.warehouse.rows import SloGoodputRow, columns
from pdpipeline.warehouse.store import Warehouse
from tests.report.constructed import (
    GOODPUT,
    LAYOUT_TIERS,
    PUSH,
    REPLICATED,
    campaign,
    layouts_campaign,
    request,
)
from tests.support.published import RESULTS, VARIANTS, two_variant_campaign

ROOT = Path(__file__).resolve().parents[2]


def all_meet(goodput_per_gpu: float, n: int = 10, gpus: int = 2) -> tuple[float, list[dict]]:
    """A run's duration and requests such that all n meet any tier and it serves
    `goodput_per_gpu` requests/s per GPU."""
    return n / goodput_per_gpu / gpus, [request(10, 1)] * n


# --- the profile's tiers ---------------------------------------------------------------------


def profile_with(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((ROOT / "profiles" / "local.yaml").read_text())
    data.update(changes)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_tiers_are_named_with_both_limits_and_attainment_0_9_by_default(tmp_path):
    tiers = {"interactive": {"ttft_ms": 300, "tpot_ms": 20}, "batch": {"ttft_ms": 3000}}
    profile = load_profile(profile_with(tmp_path, slo_tiers=tiers)).profile
    assert profile.tiers == {
        "interactive": SloTier(ttft_ms=300, tpot_ms=20, attainment=0.9),
        "batch": SloTier(ttft_ms=3000, tpot_ms=None, attainment=0.9),
    }


def test_without_tiers_the_slo_is_the_one_default_tier(tmp_path):
    data = yaml.safe_load((ROOT / "profiles" / "local.yaml").read_text())
    data.pop("slo_tiers", None)
    data["workload"].pop("rate_search", None)  # it names a tier of slo_tiers
    data["slo"] = {"ttft_ms": 400, "tpot_ms": 40}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_profile(path).profile.tiers == {"default": SloTier(ttft_ms=400, tpot_ms=40)}


@pytest.mark.parametrize(
    ("tiers", "line"),
    [
        ({"interactive": {"attainment": 0.95}}, "slo_tiers.interactive: give ttft_ms and/or "),
        ({"interactive": {}}, "slo_tiers.interactive: give ttft_ms and/or tpot_ms"),
        ({"x": {"ttft_ms": 300, "attainment": 1.2}}, "slo_tiers.x.attainment: "),
        ({"x": {"ttft_ms": -1}}, "slo_tiers.x.ttft_ms: "),
        ({}, "slo_tiers: "),
    ],
    ids=["no-limit", "empty", "attainment-above-1", "negative-limit", "no-tier"],
)
def test_a_bad_tier_is_one_line_naming_it(tmp_path, tiers, line):
    with pytest.raises(ProfileError) as error:
        load_profile(profile_with(tmp_path, slo_tiers=tiers))
    (message,) = str(error.value).splitlines()
    assert f"p.yaml: {line}" in message


def test_repository_profiles_have_tiers_and_published_ones_still_parse():
    for name in ("local", "h100x2", "h100x2-threads", "two-node-example"):
        tiers = load_profile(ROOT / "profiles" / f"{name}.yaml").profile.tiers
        assert len(tiers) >= 2 and "default" not in tiers, name
    local = load_profile(ROOT / "profiles" / "local.yaml").profile.tiers
    # The CPU decodes at 5-25 ms a token: one tier out of its reach, one within.
    assert local["interactive"].tpot_ms < 5 and local["batch"].tpot_ms > 25
    # Every published campaign's profile still parses: those from before tiers have the one
    # default tier of their `slo`, later ones their own.
    for path in RESULTS.glob("**/profile.yaml"):
        tiers = load_profile(path).profile.tiers
        if "slo_tiers:" in path.read_text():
            assert len(tiers) >= 2 and "default" not in tiers, path
        else:
            assert tiers == {"default": SloTier(ttft_ms=500, tpot_ms=50)}, path


def test_a_campaign_is_judged_at_its_stored_profiles_tiers():
    runs = with_current_columns(two_variant_campaign()["runs"])
    text = (VARIANTS / "profile.yaml").read_text()
    assert campaign_tiers(text, runs) == {"default": SloTier(ttft_ms=500, tpot_ms=50)}
    # A profile of a format no longer read: the limits its runs recorded.
    recorded = runs.with_columns(slo_ttft_ms=pl.lit(250.0), slo_tpot_ms=pl.lit(25.0))
    assert campaign_tiers("name: old\nhosts: 3\n", recorded) == {
        "default": SloTier(ttft_ms=250, tpot_ms=25)
    }


# --- attainment and goodput ------------------------------------------------------------------


def test_attainment_and_goodput_per_gpu_of_one_run():
    requests = [request(100, 10)] * 7 + [
        request(100, None),  # one output token: no TPOT, meets
        request(900, 10),  # TTFT beyond the tier
        request(None, None, ok=False),  # failed: never meets
    ]
    runs, reqs = campaign([(PUSH, 8, 0, 4.0, requests)])
    tiers = {
        "loose": SloTier(ttft_ms=1000, tpot_ms=50, attainment=0.9),
        "tight": SloTier(ttft_ms=500, tpot_ms=50, attainment=0.8),
        "tighter": SloTier(ttft_ms=500, tpot_ms=50, attainment=0.9),
        "decode": SloTier(tpot_ms=5),
    }
    frame = goodput_by_tier(runs, reqs, tiers)
    assert frame.columns == columns(SloGoodputRow)
    rows = {r["tier"]: r for r in frame.iter_rows(named=True)}
    assert list(rows) == list(tiers)  # in the profile's order
    assert rows["loose"]["requests"] == 10 and rows["loose"]["requests_met"] == 9
    assert rows["loose"]["attainment"] == pytest.approx(0.9)
    # 9 requests over 4 s on 2 GPUs.
    assert rows["loose"]["goodput_per_gpu"] == pytest.approx(9 / 4 / 2)
    assert rows["loose"]["point_met"] and rows["loose"]["best"]
    assert rows["tight"]["requests_met"] == 8 and rows["tight"]["point_met"]
    assert rows["tighter"]["attainment"] == pytest.approx(0.8)
    assert not rows["tighter"]["point_met"] and not rows["tighter"]["best"]
    # Only the one-token request has no TPOT to miss.
    assert rows["decode"]["requests_met"] == 1 and rows["decode"]["ttft_ms"] is None


def test_only_requests_in_the_steady_window_count_over_the_windows_length():
    requests = [request(100, 10, in_window=True)] * 6 + [
        request(900, 10, in_window=False),  # warming up: outside the window
        request(900, 10, in_window=None),  # no window recorded for it: counts
    ]
    runs, reqs = campaign(
        [(PUSH, 8, 0, 10.0, requests), (REPLICATED, 8, 0, 10.0, requests)],
        window_s=[3.0, None],  # the second run from before the window: its duration
    )
    frame = goodput_by_tier(runs, reqs, {"t": SloTier(ttft_ms=500)})
    push, replicated = (
        frame.filter(pl.col("arm") == arm).row(0, named=True)
        for arm in ("disaggregated", "replicated")
    )
    assert (push["requests"], push["requests_met"]) == (7, 6)
    assert push["window_s"] == 3.0 and push["goodput_per_gpu"] == pytest.approx(6 / 3.0 / 2)
    assert replicated["window_s"] == 10.0
    assert replicated["goodput_per_gpu"] == pytest.approx(6 / 10.0 / 2)


def test_a_point_meets_a_tier_over_its_repeats_and_the_best_load_is_the_most_served():
    meet, miss = request(100, 10), request(900, 10)
    runs, reqs = campaign(
        [
            (PUSH, 1, 0, 10.0, [meet] * 10),
            (PUSH, 1, 1, 10.0, [meet] * 10),
            # 10 and 8 of 10 meet: 90% over both repeats, though one repeat alone is 80%.
            (PUSH, 8, 0, 2.0, [meet] * 10),
            (PUSH, 8, 1, 2.0, [meet] * 8 + [miss] * 2),
            # Serves most, but 70% meet.
            (PUSH, 32, 0, 1.0, [meet] * 7 + [miss] * 3),
            (PUSH, 32, 1, 1.0, [meet] * 7 + [miss] * 3),
        ]
    )
    frame = goodput_by_tier(runs, reqs, {"t": SloTier(ttft_ms=500)}).sort("concurrency", "repeat")
    assert frame["point_attainment"].to_list() == pytest.approx([1, 1, 0.9, 0.9, 0.7, 0.7])
    assert frame["point_met"].to_list() == [True, True, True, True, False, False]
    assert frame["best"].to_list() == [False, False, True, True, False, False]
    (best,) = best_by_tier(frame).rows(named=True)
    assert best["concurrency"] == 8 and best["repeats"] == 2
    assert best["goodput_per_gpu"] == pytest.approx((10 / 2 / 2 + 8 / 2 / 2) / 2)


def test_a_setup_meeting_a_tier_at_no_load_has_no_best():
    runs, reqs = campaign([(PUSH, 8, 0, 2.0, [request(900, 10)] * 4)])
    frame = goodput_by_tier(runs, reqs, {"t": SloTier(ttft_ms=500)})
    assert not frame["best"].any()
    (best,) = best_by_tier(frame).rows(named=True)
    assert best["goodput_per_gpu"] is None and best["repeats"] == 0


def test_invalid_runs_do_not_count():
    runs, reqs = campaign(
        [(PUSH, 8, 0, 2.0, [request(100, 10)] * 4), (PUSH, 8, 1, 2.0, [request(100, 10)] * 4)],
        valid=[True, False],
    )
    frame = goodput_by_tier(runs, reqs, {"t": SloTier(ttft_ms=500)})
    assert frame["repeat"].to_list() == [0]


def test_the_default_tier_gives_the_runs_own_goodput_on_the_published_campaign():
    # The campaign measured each run's goodput at TTFT <= 500 ms, TPOT <= 50 ms as it ran; from
    # its stored requests, the default tier gives the same requests/s (per GPU, times GPUs).
    published = two_variant_campaign()
    runs = with_current_columns(published["runs"])
    frame = goodput_by_tier(runs, published["requests"], campaign_tiers(None, runs))
    assert frame.height == runs.height == 48
    joined = frame.join(runs.select("run_id", "goodput"), on="run_id")
    assert (joined["goodput_per_gpu"] * joined["gpus"]).to_list() == pytest.approx(
        joined["goodput"].to_list()
    )


# --- the verdict per tier --------------------------------------------------------------------


def repeats_of(series_goodput: dict[tuple[str, str | None], list[float]]):
    """A campaign where every request meets, each series serving the given requests/s per GPU
    in its repeats (one load)."""
    runs = []
    for series, values in series_goodput.items():
        for repeat, value in enumerate(values):
            duration, requests = all_meet(value)
            runs.append((series, 8, repeat, duration, requests))
    return campaign(runs)


def test_a_clear_win_has_an_interval_leaving_out_1():
    runs, reqs = repeats_of({REPLICATED: [10.0, 10.2, 9.9], PUSH: [7.0, 7.1, 6.9]})
    tier = SloTier(ttft_ms=300, tpot_ms=20)
    (verdict,) = tier_verdicts(goodput_by_tier(runs, reqs, {"interactive": tier}))
    (shape,) = verdict.shapes
    assert shape.winner == "replicated" and shape.load == "c=8"
    assert shape.goodput_per_gpu == pytest.approx(30.1 / 3)
    (ratio,) = shape.ratios
    assert ratio.ratio == pytest.approx(7.0 / (30.1 / 3))
    assert ratio.low < ratio.ratio < ratio.high < 1 and ratio.significant
    sentence = verdict.sentence()
    assert sentence.startswith(
        "interactive (TTFT ≤ 300 ms, TPOT ≤ 20 ms at 90%): at 512/64, replicated serves most, "
        "10 req/s per GPU"
    )
    assert f"disaggregated (push) 0.70x [{ratio.low:.2f}, {ratio.high:.2f}]" in sentence
    assert "tie" not in sentence


def test_a_gap_within_the_run_to_run_spread_is_a_tie():
    runs, reqs = repeats_of({REPLICATED: [10.0, 10.4, 9.6], PUSH: [9.0, 11.0, 10.5]})
    (verdict,) = tier_verdicts(goodput_by_tier(runs, reqs, {"t": SloTier(tpot_ms=20)}))
    (shape,) = verdict.shapes
    assert shape.winner == "disaggregated (push)"
    (ratio,) = shape.ratios
    assert ratio.low < 1 < ratio.high and ratio.significant is False
    assert "disaggregated (push) 1.02x [" in verdict.sentence()
    assert "(a tie)" in verdict.sentence()


def test_one_repeat_leaves_the_spread_unknown():
    runs, reqs = repeats_of({REPLICATED: [10.0], PUSH: [7.0]})
    (verdict,) = tier_verdicts(goodput_by_tier(runs, reqs, {"t": SloTier(tpot_ms=20)}))
    (ratio,) = verdict.shapes[0].ratios
    assert ratio.low is None and ratio.significant is None
    assert "disaggregated (push) 0.70x (one repeat: spread unknown)" in verdict.sentence()


def test_a_tier_no_setup_meets_is_said_plainly():
    runs, reqs = repeats_of({REPLICATED: [10.0, 10.1], PUSH: [7.0, 7.2]})
    tiers = {"impossible": SloTier(ttft_ms=1, tpot_ms=0.5), "fine": SloTier(ttft_ms=300)}
    impossible, fine = tier_verdicts(goodput_by_tier(runs, reqs, tiers))
    assert not impossible.met
    assert impossible.sentence() == (
        "impossible (TTFT ≤ 1 ms, TPOT ≤ 0.5 ms at 90%): no setup meets it at any load measured."
    )
    assert fine.met


def test_a_setup_meeting_a_tier_at_no_load_is_named():
    runs, reqs = campaign(
        [
            (REPLICATED, 8, 0, 2.0, [request(100, 10)] * 10),
            (REPLICATED, 8, 1, 2.0, [request(100, 10)] * 10),
            (PUSH, 8, 0, 2.0, [request(900, 10)] * 10),
            (PUSH, 8, 1, 2.0, [request(900, 10)] * 10),
        ]
    )
    (verdict,) = tier_verdicts(goodput_by_tier(runs, reqs, {"t": SloTier(ttft_ms=500)}))
    assert "disaggregated (push) meets it at no load" in verdict.sentence()
    (verdict,) = tier_verdicts(goodput_by_tier(runs, reqs, {"t": SloTier(tpot_ms=5)}))
    assert verdict.sentence().endswith("no setup meets it at any load measured.")


@pytest.fixture(scope="module")
def published_tiers():
    """The published two-H100 pull-vs-push campaign, judged at the h100x2 profile's tiers."""
    published = two_variant_campaign()
    runs = with_current_columns(published["runs"])
    tiers = load_profile(ROOT / "profiles" / "h100x2.yaml").profile.tiers
    frame = goodput_by_tier(runs, published["requests"], tiers)
    return runs, {v.tier: v for v in tier_verdicts(frame)}


def shape_of(verdict, input_len: str):
    return next(s for s in verdict.shapes if s.input_len == input_len)


def test_at_a_loose_tier_replication_serves_most_on_the_published_campaign(published_tiers):
    runs, verdicts = published_tiers
    batch = verdicts["batch"]  # TTFT <= 3 s, TPOT <= 100 ms: every load meets it
    long_prompt = shape_of(batch, "2048")
    assert long_prompt.winner == "replicated" and long_prompt.load == "c=32"
    # Every request met: the goodput is the runs' request rate per GPU at c=32.
    at_32 = runs.filter(
        (pl.col("arm") == "replicated")
        & (pl.col("input_len") == "2048")
        & (pl.col("concurrency") == 32)
    )
    assert long_prompt.goodput_per_gpu == pytest.approx((64 / at_32["duration_s"] / 2).mean())
    ratios = {r.series: r for r in long_prompt.ratios}
    assert ratios["disaggregated (push)"].ratio == pytest.approx(0.68, abs=0.01)
    assert ratios["disaggregated (push)"].significant
    assert ratios["disaggregated (pull)"].high < ratios["disaggregated (push)"].low
    assert shape_of(batch, "512").winner == "replicated"


def test_at_a_strict_tpot_push_serves_most_for_long_prompts(published_tiers):
    # streaming: TTFT <= 2 s, TPOT <= 10 ms. Replicated decodes at 13.6-14.4 ms per token (p50)
    # at c=32 and must stay at c=8; push keeps TPOT near 7.4 ms at c=32, its TTFT of ~1.1 s
    # within the limit, and serves all 64 requests there.
    runs, verdicts = published_tiers
    shape = shape_of(verdicts["streaming"], "2048")
    assert shape.winner == "disaggregated (push)" and shape.load == "c=32"
    at_32 = runs.filter(
        (pl.col("variant") == "push")
        & (pl.col("input_len") == "2048")
        & (pl.col("concurrency") == 32)
    )
    assert shape.goodput_per_gpu == pytest.approx((64 / at_32["duration_s"] / 2).mean())
    push = next(r for r in shape.ratios if r.series == "disaggregated (push)")
    assert push.ratio == pytest.approx(1.36, abs=0.01) and push.low > 1
    # Short prompts: replication's c=32 TPOT stays under 10 ms, and it serves most again.
    assert shape_of(verdicts["streaming"], "512").winner == "replicated"


def test_at_the_interactive_tier_disaggregation_meets_it_only_unloaded(published_tiers):
    # TTFT <= 300 ms: the disaggregated prefills queue past it from c=8 on long prompts.
    _, verdicts = published_tiers
    shape = shape_of(verdicts["interactive"], "2048")
    assert shape.winner == "replicated" and shape.load == "c=8"
    for ratio in shape.ratios:
        assert ratio.ratio == pytest.approx(0.16, abs=0.01) and ratio.significant
    assert (
        verdicts["interactive"]
        .sentence()
        .startswith(
            "interactive (TTFT ≤ 300 ms, TPOT ≤ 20 ms at 90%): at 512/128, replicated serves most"
        )
    )


def test_the_slo_best_view_is_best_by_tier(tmp_path):
    published = two_variant_campaign()
    runs = with_current_columns(published["runs"])
    tiers = load_profile(ROOT / "profiles" / "h100x2.yaml").profile.tiers
    frame = goodput_by_tier(runs, published["requests"], tiers)
    store = Warehouse(tmp_path / "w.duckdb")
    store.replace({"slo_goodput": frame}, where={"campaign_id": runs["campaign_id"][0]})
    keys = ["tier", "input_len", "arm", "layout", "engine_variant", "variant"]
    view = store.query("SELECT * FROM slo_best").sort(keys, nulls_last=True)
    ours = best_by_tier(frame).drop_nulls("goodput_per_gpu").sort(keys, nulls_last=True)
    assert view.height == ours.height == 3 * 2 * 4
    for column in ("concurrency", "repeats"):
        assert view[column].to_list() == ours[column].to_list()
    for column in ("goodput_per_gpu", "output_throughput_per_gpu"):
        assert view[column].to_list() == pytest.approx(ours[column].to_list())


# --- layouts and engine variants (tests/report/constructed.py) -------------------------------


@pytest.fixture(scope="module")
def layout_goodput() -> pl.DataFrame:
    runs, requests = layouts_campaign()
    return goodput_by_tier(runs, requests, LAYOUT_TIERS)


@pytest.fixture(scope="module")
def layout_verdicts(layout_goodput) -> dict:
    return {v.tier: v for v in tier_verdicts(layout_goodput)}


def test_goodput_per_tier_keeps_every_series_apart(layout_goodput):
    assert layout_goodput.columns == columns(SloGoodputRow)
    best = best_by_tier(layout_goodput).filter(pl.col("tier") == "loose")
    assert best.height == len(GOODPUT)
    for series, goodput in GOODPUT.items():
        (row,) = best.filter(series.rows()).rows(named=True)
        assert row["goodput_per_gpu"] == pytest.approx(goodput), series
        assert row["repeats"] == 3


def test_the_winner_is_the_best_series_over_every_layout_and_engine(layout_verdicts):
    (shape,) = layout_verdicts["loose"].shapes
    assert shape.winner == "disaggregated 3P1D (push) [block128]"
    assert shape.goodput_per_gpu == pytest.approx(3.9)
    # Judged against the best replicated series on as many devices: 4R, at its best engine.
    best = shape.disaggregation
    assert best.baseline == "replicated 4R [block128]"
    assert best.ratio.series == "disaggregated 3P1D (push) [block128]"
    assert best.ratio.ratio == pytest.approx(3.9 / 3.2) and best.ratio.significant
    assert (
        "best disaggregated, disaggregated 3P1D (push) [block128], against replicated 4R "
        f"[block128] on as many devices: 1.22x [{best.ratio.low:.2f}, {best.ratio.high:.2f}]"
    ) in layout_verdicts["loose"].sentence()


def test_each_layout_is_judged_against_its_same_device_replicas(layout_verdicts):
    (shape,) = layout_verdicts["loose"].shapes
    on_two, on_four = shape.rivalries
    # 2R's best engine is block16, 1P1D's block128: each side at its own best.
    assert on_two.baseline == "replicated 2R [block16]"
    ratios = {r.series: r for r in on_two.ratios}
    assert list(ratios) == [
        "disaggregated 1P1D (pull) [block128]",
        "disaggregated 1P1D (push) [block128]",
    ]
    pull, push = ratios.values()
    assert pull.ratio == pytest.approx(2.95 / 3.0) and pull.significant is False  # a tie
    assert push.ratio == pytest.approx(3.35 / 3.0) and push.low > 1
    assert on_four.baseline == "replicated 4R [block128]"
    assert [r.series for r in on_four.ratios] == [
        "disaggregated 3P1D (pull) [block128]",
        "disaggregated 3P1D (push) [block128]",
    ]
    assert [r.ratio for r in on_four.ratios] == pytest.approx([3.4 / 3.2, 3.9 / 3.2])
    sentence = layout_verdicts["loose"].sentence()
    assert "— against replicated 2R [block16]: disaggregated 1P1D (pull) [block128] 0.98x [" in (
        sentence
    )
    assert "(a tie), disaggregated 1P1D (push) [block128] 1.12x [" in sentence


def test_where_a_layout_misses_the_tier_the_other_may_win_it(layout_verdicts):
    verdict = layout_verdicts["interactive"]
    (shape,) = verdict.shapes
    assert shape.winner == "disaggregated 1P1D (push) [block128]"
    assert shape.disaggregation.baseline == "replicated 2R [block16]"
    assert shape.disaggregation.ratio.ratio == pytest.approx(3.35 / 3.0)
    # No engine variant of 3P1D meets it: named without one.
    assert (
        "— against replicated 4R [block128]: disaggregated 3P1D (pull) meets it at no load, "
        "disaggregated 3P1D (push) meets it at no load."
    ) in verdict.sentence()


def test_replicas_that_meet_a_tier_at_no_load_are_named_per_device_count(layout_verdicts):
    verdict = layout_verdicts["streaming"]
    assert verdict.shapes[0].winner == "disaggregated 3P1D (push) [block128]"
    assert verdict.sentence().endswith(
        "; replicated 2R meets it at no load; replicated 4R meets it at no load."
    )


def test_a_campaign_with_null_layouts_and_engines_is_judged_as_before():
    published = two_variant_campaign()
    runs = with_current_columns(published["runs"])
    tiers = load_profile(ROOT / "profiles" / "h100x2.yaml").profile.tiers
    before = runs.drop("layout", "engine_variant")
    frames = [goodput_by_tier(r, published["requests"], tiers) for r in (runs, before)]
    assert frames[0].equals(frames[1])
    sentences = [[v.sentence() for v in tier_verdicts(f)] for f in frames]
    assert sentences[0] == sentences[1]
    # Without layouts or engine variants, no 'best disaggregated' clause: the sentence of before.
    assert all("best disaggregated" not in s for s in sentences[0])
    assert all(s.shapes[0].disaggregation is None for s in tier_verdicts(frames[0]))


def test_the_slo_best_view_keeps_layouts_and_engines_apart(layout_goodput, tmp_path):
    store = Warehouse(tmp_path / "w.duckdb")
    store.replace({"slo_goodput": layout_goodput}, where={"campaign_id": "c"})
    view = store.query("SELECT * FROM slo_best WHERE tier = 'loose'")
    assert view.height == len(GOODPUT)
    best = view.filter(Series("replicated", "4R", "block128").rows())
    assert best["goodput_per_gpu"].to_list() == pytest.approx([3.2])
