"""A campaign's analysis: the tables its report derives from its runs and requests, by one route
of pure functions from the frames `load.read_campaign` gives; stored alike by comparison_report
and by the `report` and `export` commands (`analysed`)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pdpipeline.errors import ProfileError
from pdpipeline.kvcache import KVLayout, kv_layout, load_config
from pdpipeline.profile import Profile, stored_profile
from pdpipeline.report.compare import KvLink, compare, link_between
from pdpipeline.report.kvcost import (
    cost_tables,
    degraded_runs,
    descriptor_counts,
    request_blocks,
    transfer_points,
)
from pdpipeline.report.load import DERIVED_TABLES, Campaign, read_campaign
from pdpipeline.report.recommend import recommendations
from pdpipeline.report.regime import regime_map
from pdpipeline.report.slo import campaign_tiers, goodput_by_tier
from pdpipeline.report.transport import spin_caveat
from pdpipeline.warehouse.store import Warehouse

Links = dict[str | None, KvLink | None] | None


def analysis(campaign: Campaign, layout: KVLayout | None = None) -> dict[str, pl.DataFrame]:
    """The tables a campaign's report derives from its runs and requests: the comparison per
    point, the KV transfer cost model, the goodput per SLO tier, and the regime map.

    Runs whose KV transport is degraded (report/kvcost.py) are kept out of the goodput per tier,
    and so out of the tier verdicts and the recommendation, and out of the regime map: they
    measured a broken link, not the setup. The comparison keeps them."""
    runs, requests = campaign.runs, campaign.requests
    links, layout = campaign_links(campaign, layout)
    kv_cost = campaign_kv_cost(campaign, links, layout)
    degraded = degraded_runs(kv_cost["kv_cost_fit"])["run_id"]
    judged = runs.filter(~pl.col("run_id").is_in(degraded.implode()))
    tiers = campaign_tiers(campaign.profile_text, runs)
    goodput = goodput_by_tier(judged, requests, tiers)
    caveat = spin_caveat(campaign["launch_servers"])
    return {
        "comparison": compare(runs, layout, links),
        "slo_goodput": goodput,
        "regime_map": regime_map(judged, requests),
        "recommendations": recommendations(goodput, campaign.campaign_id, caveat=caveat),
        **kv_cost,
    }


def completed(campaign: Campaign) -> Campaign:
    """The campaign with what its report reads and an older campaign (or its export) did not
    store derived here as `analysis` derives it: the comparison, the KV transfer cost model
    where KV moved, and the recommendation from its stored goodput per tier. Its goodput per
    tier and its regime map are read as stored: none where it stored none."""
    derived: dict[str, pl.DataFrame] = {}
    kv_cost = not campaign["kv_cost_fit"].height and (campaign.runs["kv_transfers"] > 0).any()
    if not campaign.stored or kv_cost:
        links, layout = campaign_links(campaign)
        if not campaign.stored:
            derived["comparison"] = compare(campaign.runs, layout, links)
        if kv_cost:
            derived |= campaign_kv_cost(campaign, links, layout)
    if not campaign["recommendations"].height:
        derived["recommendations"] = recommendations(campaign["slo_goodput"], campaign.campaign_id)
    return campaign.with_tables(derived)


def _profile(text: str | None) -> Profile | None:
    """The campaign's profile as stored; None where it has none or one of an older format."""
    try:
        return stored_profile(text) if text else None
    except ProfileError:
        return None  # a profile of an older format: no link, no prediction


def campaign_links(
    campaign: Campaign, layout: KVLayout | None = None
) -> tuple[Links, KVLayout | None]:
    """The KV link of each disaggregated layout (None without a profile of this version), and
    the KV layout of the profile's model (`layout` when given; None where its config is not
    here)."""
    profile = _profile(campaign.profile_text)
    links = kv_links(profile, campaign["hosts"]) if profile else None
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


def campaign_kv_cost(
    campaign: Campaign, links: Links, layout: KVLayout | None
) -> dict[str, pl.DataFrame]:
    """The campaign's `kv_cost_model` and `kv_cost_fit` tables, from its runs, their NIXL
    descriptor counts and the KV blocks their requests offered."""
    points = transfer_points(
        campaign.runs,
        descriptor_counts(campaign.server_metrics),
        request_blocks(campaign.requests),
        links,
        layout and layout.num_layers,
    )
    return cost_tables(points)


def campaign_comparison(
    warehouse: Warehouse, campaign_id: str, layout: KVLayout | None = None
) -> pl.DataFrame:
    """Compare one stored campaign's runs, with the KV link its hardware_check found for each
    layout of the disaggregated arm.

    `layout` (of the KV cache) predicts KV bytes per prompt; without it, the model config named
    by the campaign's profile is read when it is here."""
    campaign = read_campaign(warehouse, campaign_id)
    links, layout = campaign_links(campaign, layout)
    return compare(campaign.runs, layout, links)


def analysed(warehouse: Warehouse, campaign_id: str, again: bool = False) -> Campaign:
    """The campaign, read once, with its derived tables stored: computed and stored `again` (as
    comparison_report does), or where it never stored them (e.g. arms materialized one by one
    on a remote host), so that SQL users and the report find them too."""
    campaign = read_campaign(warehouse, campaign_id)
    if again or not campaign.stored:
        tables = analysis(campaign)
        warehouse.replace(tables, where={"campaign_id": campaign_id})
        campaign = campaign.with_tables(tables)
    return campaign


def store_analysis(warehouse: Warehouse, campaign_id: str) -> dict[str, pl.DataFrame]:
    """Compute and store (replacing) the campaign's derived tables; returns them."""
    campaign = analysed(warehouse, campaign_id, again=True)
    return {table: campaign[table] for table in DERIVED_TABLES}
