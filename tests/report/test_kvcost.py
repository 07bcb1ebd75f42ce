"""The KV transfer cost model: the fit on synthetic and recorded transfers (the 2x H200 campaign
of 2026-11-28, per run in tests/fixtures), the degraded-run check, and its report section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pdpipeline.defs.kv_cache import modelled_rows
from pdpipeline.kvcache import kv_layout, load_config
from pdpipeline.profile import stored_profile
from pdpipeline.report.analysis import store_analysis
from pdpipeline.report.build import build
from pdpipeline.report.compare import KvLink
from pdpipeline.report.kvcost import (
    POINT_SCHEMA,
    CostModel,
    block_size,
    cost_tables,
    fit,
    nnls,
    predict,
    transfer_points,
)
from pdpipeline.warehouse.store import Warehouse
from tests.support.published import RESULTS, lengths_as_text, read_csv

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "kv_transfers_h200x2.csv"
PUBLISHED = RESULTS / "h200x2-2026-11-28"
CAMPAIGN = "h200x2-20261128T195151Z"
LAYERS = 32  # Llama-3.1-8B
BYTES_PER_TOKEN = 131072  # 32 layers x K and V x 8 KV heads x 128 x 2 bytes


def recorded() -> pl.DataFrame:
    """Per disaggregated run: its runs columns, NIXL descriptor histogram sum and count, mean
    KV blocks and prompt tokens per request, and the link hardware_check found."""
    return pl.read_csv(
        RECORDED, schema_overrides={"input_len": pl.Utf8, "output_len": pl.Utf8}
    ).with_columns(engine_args=pl.col("engine_args").cast(pl.Utf8))


def points_of(runs: pl.DataFrame, counted: bool = True, layers: int | None = None):
    link = KvLink(runs["link"][0], runs["link_gbyte_per_s"][0])
    descriptors = runs.select("run_id", "descriptors_sum", "descriptors_count")
    return transfer_points(
        runs,
        descriptors if counted else descriptors.clear(),
        runs.select("run_id", "kv_blocks", "prompt_tokens"),
        {"1P1D": link, None: link},
        layers,
    )


def synthetic(model: CostModel, block_sizes=(16, 64, 128), tokens=(512, 2048, 4096, 8192)):
    """Exact transfer times by `model` at each block size and prompt length."""
    rows = []
    for size in block_sizes:
        for n in tokens:
            blocks = -(-n // size)
            descriptors, nbytes = blocks * LAYERS * 2, blocks * size * BYTES_PER_TOKEN
            rows.append(
                {
                    "campaign_id": "c",
                    "run_id": f"b{size}-in{n}",
                    "layout": "1P1D",
                    "engine_variant": f"block{size}",
                    "variant": "pull",
                    "link": "a NVLink",
                    "link_gbyte_per_s": 450.0,
                    "block_size": size,
                    "bytes": float(nbytes),
                    "descriptors": float(descriptors),
                    "descriptors_source": "estimate",
                    "seconds": model.seconds(descriptors, nbytes),
                }
            )
    return pl.DataFrame(rows, schema=POINT_SCHEMA)


def test_the_fit_recovers_known_coefficients():
    known = CostModel(fixed_s=2.5e-3, per_descriptor_s=5e-6, per_byte_s=1 / 80e9)
    found = fit(synthetic(known))
    assert found.fixed_s == pytest.approx(known.fixed_s, rel=1e-6)
    assert found.per_descriptor_s == pytest.approx(known.per_descriptor_s, rel=1e-6)
    assert found.per_byte_s == pytest.approx(known.per_byte_s, rel=1e-6)
    assert found.gbyte_per_s == pytest.approx(80.0, rel=1e-6)
    assert found.block_sizes == (16, 64, 128)


def test_coefficients_are_never_negative():
    # Time that falls with bytes at a given descriptor count: least squares would give bytes a
    # negative cost; the fit gives it none and fits the rest without it.
    x = np.column_stack(
        [np.ones(6), [1e3, 2e3, 4e3, 8e3, 1.6e4, 3.2e4], [4e8, 1e8, 8e8, 2e8, 1e9, 1e8]]
    )
    y = 1e-3 + 5e-6 * x[:, 1] - 2e-12 * x[:, 2]
    assert np.linalg.lstsq(x, y, rcond=None)[0][2] < 0
    fixed, per_descriptor, per_byte = nnls(x, y)
    assert per_byte == 0
    expected = np.linalg.lstsq(x[:, :2], y, rcond=None)[0]
    assert [fixed, per_descriptor] == pytest.approx(expected, rel=1e-9)
    assert min(fixed, per_descriptor) >= 0


def test_a_transfer_is_predicted_in_whole_blocks():
    model = CostModel(fixed_s=1e-3, per_descriptor_s=5e-6, per_byte_s=1e-11)
    # 2,000 tokens at block 16: 125 blocks, 8,000 descriptors and 2,000 tokens' bytes; at block
    # 128: 16 blocks (the last one partial), 1,024 descriptors, 2,048 tokens' bytes.
    assert predict(model, 2000, 16, BYTES_PER_TOKEN, LAYERS) == pytest.approx(
        1e-3 + 8000 * 5e-6 + 2000 * BYTES_PER_TOKEN * 1e-11
    )
    assert predict(model, 2000, 128, BYTES_PER_TOKEN, LAYERS) == pytest.approx(
        1e-3 + 1024 * 5e-6 + 2048 * BYTES_PER_TOKEN * 1e-11
    )


def test_the_block_size_is_the_last_one_given():
    assert block_size(None) == 16
    assert block_size('["--block-size", "128"]') == 128
    assert block_size(["--block-size", "32", "--block-size=64"]) == 64


def test_the_recorded_transfers_fit_one_model_per_link():
    tables = cost_tables(points_of(recorded()))
    (model,) = tables["kv_cost_model"].rows(named=True)
    assert model["link"] == "h200 NVLink"
    assert model["n_runs"] == 24 and model["n_settings"] == 4
    assert json.loads(model["block_sizes"]) == [16, 128]
    assert model["descriptors_source"] == "metric"
    assert model["fixed_s"] * 1e3 == pytest.approx(7.83, abs=0.01)
    assert model["per_descriptor_s"] * 1e6 == pytest.approx(6.92, abs=0.01)
    assert 1e-9 / model["per_byte_s"] == pytest.approx(26.4, abs=0.1)
    assert model["r2"] == pytest.approx(0.69, abs=0.01)
    # Each setting predicted from the other three: push moves the same KV ~4x slower than pull
    # at block 128, which one model per link cannot tell apart.
    assert model["held_out_error"] == pytest.approx(0.666, abs=0.001)
    assert model["achieved_gbyte_per_s"] == pytest.approx(5.58, abs=0.01)
    fitted = tables["kv_cost_fit"]
    assert fitted.height == 24
    assert not fitted["degraded"].any()
    assert fitted["held_out_predicted_s"].null_count() == 0


def test_descriptors_estimated_from_blocks_match_the_counted_ones():
    counted = points_of(recorded())
    estimated = points_of(recorded(), counted=False, layers=LAYERS)
    assert set(estimated["descriptors_source"]) == {"estimate"}
    assert estimated["descriptors"].to_list() == counted["descriptors"].to_list()
    # Without the model's layers there is nothing to estimate from: no point.
    assert points_of(recorded(), counted=False).height == 0


def test_a_run_that_lost_its_transport_is_degraded_and_the_rest_are_not():
    runs = recorded()
    healthy = cost_tables(points_of(runs))["kv_cost_model"]
    # A repeat of block128 pull at 2048 tokens that moved 0.5 GB/s (a pull fallen back to TCP,
    # vLLM #52607) instead of its ~32 GB/s.
    twin = runs.filter(pl.col("run_id").str.contains("block128-pull/in2048-out64-c8-rep0"))
    broken = twin.with_columns(
        run_id=pl.col("run_id").str.replace("rep0", "rep1"),
        repeat=pl.lit(1, dtype=runs["repeat"].dtype),
        kv_xfer_time_s=pl.col("kv_bytes") / 0.5e9,
    )
    tables = cost_tables(points_of(pl.concat([runs, broken])))
    flagged = tables["kv_cost_fit"].filter(pl.col("degraded"))
    assert flagged["run_id"].to_list() == broken["run_id"].to_list()
    assert flagged["degraded_reason"][0].startswith("536.9 ms per transfer, 21.4x the 25.1 ms")
    assert (
        "the link's cost model (fitted on its other healthy runs)" in flagged["degraded_reason"][0]
    )
    # The model is fitted without it: the same as on the recorded runs alone.
    model = tables["kv_cost_model"]
    for column in ("fixed_s", "per_descriptor_s", "per_byte_s", "n_runs", "held_out_error"):
        assert model[column][0] == pytest.approx(healthy[column][0]), column


def test_a_setting_slow_throughout_is_degraded():
    # Every block128 pull run 40x slower: its runs set a slow model of their own, so only the
    # model of the other settings shows it.
    slow = pl.col("run_id").str.contains("block128-pull")
    runs = recorded().with_columns(
        kv_xfer_time_s=pl.when(slow).then(pl.col("kv_xfer_time_s") * 40).otherwise("kv_xfer_time_s")
    )
    fitted = cost_tables(points_of(runs))["kv_cost_fit"]
    flagged = fitted.filter(pl.col("degraded"))
    assert sorted(flagged["run_id"]) == sorted(runs.filter(slow)["run_id"])
    assert all("its setting's transfers take" in r for r in flagged["degraded_reason"])


def test_without_a_model_a_run_under_one_percent_of_the_link_is_degraded():
    runs = recorded().filter(pl.col("run_id").str.contains("block128-pull/in2048"))
    runs = runs.with_columns(
        kv_xfer_time_s=pl.when(pl.col("concurrency") == 32)
        .then(pl.col("kv_bytes") / 2e9)  # 2 GB/s: 0.4% of 478 GB/s
        .otherwise("kv_xfer_time_s")
    )
    tables = cost_tables(points_of(runs))
    assert tables["kv_cost_model"].height == 0  # two runs: no model
    fitted = tables["kv_cost_fit"].sort("run_id")
    assert fitted["predicted_s"].null_count() == 2
    assert fitted["degraded"].to_list() == [True, False]
    assert "0.42% of the link's 478 GB/s nominal" in fitted["degraded_reason"][0]


# --- the report, from the published export of the same campaign --------------------------------


def store_published(store: Warehouse, degrade: str | None = None) -> None:
    """The published campaign with the NIXL descriptor counts of the fixture as its server
    metrics; `degrade`: a run whose KV moved at 0.5 GB/s instead."""
    tables = {
        t: lengths_as_text(read_csv(PUBLISHED / f"{t}.csv"))
        for t in ("campaigns", "hosts", "runs", "handoff_variants")
    }
    tables["campaigns"] = tables["campaigns"].with_columns(
        profile_text=pl.lit((PUBLISHED / "profile.yaml").read_text())
    )
    tables["runs"] = tables["runs"].with_columns(
        pl.col("request_rate").cast(pl.Float64),
        pl.col("engine_args").cast(pl.Utf8),
        kv_xfer_time_s=pl.when(pl.col("run_id").eq_missing(pl.lit(degrade, dtype=pl.Utf8)))
        .then(pl.col("kv_bytes") / 0.5e9)
        .otherwise("kv_xfer_time_s"),
    )
    tables["requests"] = pl.read_parquet(PUBLISHED / "requests.parquet")
    counts = recorded().select(
        "run_id", "campaign_id", "arm", "descriptors_sum", "descriptors_count"
    )
    tables["server_metrics"] = counts.unpivot(
        ["descriptors_sum", "descriptors_count"],
        index=["run_id", "campaign_id", "arm"],
        variable_name="name",
        value_name="delta",
    ).with_columns(
        server=pl.lit("disaggregated-decode-1"),
        name=pl.col("name").replace(
            {
                "descriptors_sum": "vllm:nixl_num_descriptors_sum",
                "descriptors_count": "vllm:nixl_num_descriptors_count",
            }
        ),
    )
    store.replace(tables, where={"campaign_id": CAMPAIGN})
    store_analysis(store, CAMPAIGN)


def test_the_report_shows_the_cost_model(tmp_path):
    store = Warehouse(tmp_path / "w.duckdb")
    store_published(store)
    stored = store.query("SELECT * FROM kv_cost_model WHERE campaign_id = ?", [CAMPAIGN])
    assert stored["link"].to_list() == ["h200 NVLink"]
    assert stored["held_out_error"][0] == pytest.approx(0.666, abs=0.001)
    assert store.query("SELECT count(*) AS n FROM kv_cost_fit")["n"][0] == 24
    report = build(store, CAMPAIGN, tmp_path / "report")
    assert "kv_cost" in report.figures
    details = report.details_md
    assert "### KV transfer cost model" in details
    assert (
        "h200 NVLink (478.1 GB/s nominal): a transfer costs 7.83 ms fixed + 6.92 µs per "
        "descriptor + 1 byte at 26.4 GB/s (5.5% of the link)"
    ) in details
    assert "predicting each setting from the others misses by 67% (median)" in details
    assert "No run's KV transport is degraded" in details
    assert "| disaggregated 1P1D (push) [block128] | 128 | 6 | 44.9 | 25.1 | +58% |" in details
    html = report.html_path.read_text()
    assert '<section id="kv-cost"><h2>KV transfer cost model</h2>' in html
    assert html.count('<td class="setup">disaggregated 1P1D') == 24  # the comparison's
    table = html[html.index('<table id="kv-cost-table">') :]
    assert table[: table.index("</table>")].count("<tr>") == 1 + 4  # a row per setting


def test_a_degraded_run_is_left_out_of_the_verdicts(tmp_path):
    store = Warehouse(tmp_path / "w.duckdb")
    broken = f"{CAMPAIGN}/disaggregated-1P1D-block128-pull/in2048-out64-c8-rep0"
    store_published(store, degrade=broken)
    fitted = store.query("SELECT run_id, degraded FROM kv_cost_fit WHERE degraded")
    assert fitted["run_id"].to_list() == [broken]
    judged = store.query("SELECT DISTINCT run_id FROM slo_goodput")["run_id"]
    assert broken not in judged.to_list() and judged.len() == 47
    report = build(store, CAMPAIGN, tmp_path / "report")
    assert "Left out of the tier verdicts, the recommendation and the regime map: 1 run(s)" in (
        report.verdict_md
    )
    assert f"- {broken}: " in report.details_md


def test_kv_cache_analysis_predicts_by_the_profiles_latest_model(tmp_path):
    # A later campaign of the profile, before its arms ran: its KV link's model is the one the
    # published campaign fitted, at each block size of the profile's engine variants.
    store = Warehouse(tmp_path / "w.duckdb")
    store_published(store)
    later = "h200x2-later"
    campaigns = store.query("SELECT * FROM campaigns").with_columns(
        campaign_id=pl.lit(later), started_at=pl.col("started_at") + pl.duration(days=1)
    )
    hosts = store.query("SELECT * FROM hosts").with_columns(campaign_id=pl.lit(later))
    store.replace({"campaigns": campaigns, "hosts": hosts}, where={"campaign_id": later})
    profile = stored_profile(campaigns["profile_text"][0])
    layout = kv_layout(load_config(profile.model.tokenizer_dir), profile.model.kv_cache_dtype)
    rows = modelled_rows(store, later, profile, layout, [2048])
    assert [(r.link, r.link_source) for r in rows] == [
        (f"h200 NVLink, block {size}, cost model of {CAMPAIGN}", "model") for size in (16, 128)
    ]
    fitted = store.query(
        "SELECT block_size, predicted_s FROM kv_cost_fit WHERE run_id LIKE '%pull/in2048-out64-c8%'"
    ).sort("block_size")
    assert [r.predicted_seconds for r in rows] == pytest.approx(fitted["predicted_s"].to_list())
