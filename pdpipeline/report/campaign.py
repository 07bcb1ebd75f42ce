"""A stored campaign's comparison: from its runs, the KV link its hardware_check found and the
model its profile names; stored when its comparison_report never ran."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pdpipeline.errors import ProfileError
from pdpipeline.kvcache import KVLayout, kv_layout, load_config
from pdpipeline.profile import Profile, stored_profile
from pdpipeline.report.compare import KvLink, compare, link_between, with_current_columns
from pdpipeline.report.kvcost import (
    cost_tables,
    degraded_runs,
    descriptor_counts,
    request_blocks,
    transfer_points,
)
from pdpipeline.report.recommend import recommendations
from pdpipeline.report.regime import regime_map
from pdpipeline.report.slo import campaign_tiers, goodput_by_tier
from pdpipeline.report.transport import spin_caveat
from pdpipeline.serving.vllm_metrics import NIXL_DESCRIPTORS_COUNT, NIXL_DESCRIPTORS_SUM
from pdpipeline.warehouse.store import Warehouse


def campaign_comparison(
    warehouse: Warehouse, campaign_id: str, layout: KVLayout | None = None
) -> pl.DataFrame:
    """Compare one campaign's runs, with the KV link its hardware_check found for each layout
    of the disaggregated arm.

    `layout` (of the KV cache) predicts KV bytes per prompt; without it, the model config named
    by the campaign's profile is read when it is here."""
    links, layout = campaign_links(warehouse, campaign_id, layout)
    return compare(grid_runs(warehouse, campaign_id), layout, links)


def campaign_links(
    warehouse: Warehouse, campaign_id: str, layout: KVLayout | None = None
) -> tuple[dict[str | None, KvLink | None] | None, KVLayout | None]:
    """The KV link of each disaggregated layout (None without a profile of this version), and
    the KV layout of the profile's model (`layout` when given; None where its config is not
    here)."""
    hosts = warehouse.query("SELECT * FROM hosts WHERE campaign_id = ?", [campaign_id])
    text = warehouse.query(
        "SELECT profile_text FROM campaigns WHERE campaign_id = ?", [campaign_id]
    )["profile_text"]
    try:
        profile = stored_profile(text[0]) if text.len() else None
    except ProfileError:
        profile = None  # a profile of an older format: no link, no prediction
    links = kv_links(profile, hosts) if profile else None
    if layout is None and profile is not None:
        config = Path(profile.model.tokenizer_dir) / "config.json"
        if config.is_file():
            layout = kv_layout(load_config(config.parent), profile.model.kv_cache_dtype)
    return links, layout


def kv_links(profile: Profile, hosts: pl.DataFrame) -> dict[str | None, KvLink | None]:
    """The link between the prefill and decode hosts of each disaggregated layout; under None,
    the first layout's, which campaigns from before layouts (their runs have none) ran."""
    if not profile.arms.disaggregated:
        return {}
    links: dict[str | None, KvLink | None] = {}
    for name in profile.layouts("disaggregated"):
        slots = profile.instances("disaggregated", name)
        hosts_of = {
            role: [s.placement.host for s in slots if s.role == role]
            for role in ("prefill", "decode")
        }
        links[name] = link_between(hosts, hosts_of["prefill"], hosts_of["decode"])
    links[None] = next(iter(links.values()), None)
    return links


def analysis(warehouse: Warehouse, campaign_id: str) -> dict[str, pl.DataFrame]:
    """The tables a campaign's report derives from its runs and requests: the comparison per
    point, the KV transfer cost model, the goodput per SLO tier, and the regime map.

    Runs whose KV transport is degraded (report/kvcost.py) are kept out of the goodput per tier,
    and so out of the tier verdicts and the recommendation, and out of the regime map: they
    measured a broken link, not the setup. The comparison keeps them."""
    runs = grid_runs(warehouse, campaign_id)
    # Every column but the inter-token gaps, which are the bulk of the table and unused here.
    requests = warehouse.query(
        "SELECT * EXCLUDE (itl_s) FROM requests WHERE campaign_id = ?", [campaign_id]
    )
    text = warehouse.query(
        "SELECT profile_text FROM campaigns WHERE campaign_id = ?", [campaign_id]
    )["profile_text"]
    links, layout = campaign_links(warehouse, campaign_id)
    kv_cost = campaign_kv_cost(warehouse, campaign_id, runs, requests, links, layout)
    degraded = degraded_runs(kv_cost["kv_cost_fit"])["run_id"]
    judged = runs.filter(~pl.col("run_id").is_in(degraded.implode()))
    tiers = campaign_tiers(text[0] if text.len() else None, runs)
    goodput = goodput_by_tier(judged, requests, tiers)
    servers = warehouse.query("SELECT * FROM launch_servers WHERE campaign_id = ?", [campaign_id])
    return {
        "comparison": compare(runs, layout, links),
        "slo_goodput": goodput,
        "regime_map": regime_map(judged, requests),
        "recommendations": recommendations(goodput, campaign_id, caveat=spin_caveat(servers)),
        **kv_cost,
    }


def campaign_kv_cost(
    warehouse: Warehouse,
    campaign_id: str,
    runs: pl.DataFrame,
    requests: pl.DataFrame,
    links: dict[str | None, KvLink | None] | None,
    layout: KVLayout | None,
) -> dict[str, pl.DataFrame]:
    """The campaign's `kv_cost_model` and `kv_cost_fit` tables, from its runs, their NIXL
    descriptor counts and the KV blocks their requests offered."""
    metrics = warehouse.query(
        "SELECT run_id, name, delta FROM server_metrics WHERE campaign_id = ? AND name IN (?, ?)",
        [campaign_id, NIXL_DESCRIPTORS_SUM, NIXL_DESCRIPTORS_COUNT],
    )
    points = transfer_points(
        runs,
        descriptor_counts(metrics),
        request_blocks(requests),
        links,
        layout and layout.num_layers,
    )
    return cost_tables(points)


def grid_runs(warehouse: Warehouse, campaign_id: str) -> pl.DataFrame:
    """The campaign's runs of its workload matrix: a rate search's runs sit at rates of their
    own per series, so they are compared nowhere; their answer is `slo_capacity`."""
    return with_current_columns(
        warehouse.query(
            "SELECT * FROM runs WHERE campaign_id = ? AND searched_for IS NULL", [campaign_id]
        )
    )


def store_analysis(warehouse: Warehouse, campaign_id: str) -> dict[str, pl.DataFrame]:
    """Compute and store (replacing) the campaign's derived tables; returns them."""
    tables = analysis(warehouse, campaign_id)
    warehouse.replace(tables, where={"campaign_id": campaign_id})
    return tables


def ensure_analysis(warehouse: Warehouse, campaign_id: str) -> None:
    """Store the campaign's derived tables if its comparison_report never ran (e.g. arms
    materialized one by one on a remote host), so SQL users and the report find them too."""
    stored = warehouse.query(
        "SELECT count(*) AS n FROM comparison WHERE campaign_id = ?", [campaign_id]
    )
    if not stored["n"][0]:
        store_analysis(warehouse, campaign_id)
