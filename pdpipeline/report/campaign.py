"""A stored campaign's comparison: from its runs, the KV link its hardware_check found and the
model its profile names; stored when its comparison_report never ran."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pydantic
import yaml

from pdpipeline.kvcache import KVLayout, kv_layout, load_config
from pdpipeline.profile import Profile, profile_from_text
from pdpipeline.report.compare import KvLink, compare, link_between, with_current_columns
from pdpipeline.report.recommend import recommendations
from pdpipeline.report.regime import regime_map
from pdpipeline.report.slo import campaign_tiers, goodput_by_tier
from pdpipeline.warehouse.store import Warehouse


def campaign_comparison(
    warehouse: Warehouse, campaign_id: str, layout: KVLayout | None = None
) -> pl.DataFrame:
    """Compare one campaign's runs, with the KV link its hardware_check found for each layout
    of the disaggregated arm.

    `layout` (of the KV cache) predicts KV bytes per prompt; without it, the model config named
    by the campaign's profile is read when it is here."""
    runs = grid_runs(warehouse, campaign_id)
    hosts = warehouse.query("SELECT * FROM hosts WHERE campaign_id = ?", [campaign_id])
    text = warehouse.query(
        "SELECT profile_text FROM campaigns WHERE campaign_id = ?", [campaign_id]
    )["profile_text"]
    try:
        profile = profile_from_text(text[0]) if text.len() else None
    except (pydantic.ValidationError, yaml.YAMLError):
        profile = None  # a profile of an older format: no link, no prediction
    links = _links(profile, hosts) if profile else None
    if layout is None and profile is not None:
        config = Path(profile.model.tokenizer_dir) / "config.json"
        if config.is_file():
            layout = kv_layout(load_config(config.parent), profile.model.kv_cache_dtype)
    return compare(runs, layout, links)


def _links(profile: Profile, hosts: pl.DataFrame) -> dict[str | None, KvLink | None]:
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
    point, the goodput per SLO tier, and the regime map."""
    runs = grid_runs(warehouse, campaign_id)
    # Every column but the inter-token gaps, which are the bulk of the table and unused here.
    requests = warehouse.query(
        "SELECT * EXCLUDE (itl_s) FROM requests WHERE campaign_id = ?", [campaign_id]
    )
    text = warehouse.query(
        "SELECT profile_text FROM campaigns WHERE campaign_id = ?", [campaign_id]
    )["profile_text"]
    tiers = campaign_tiers(text[0] if text.len() else None, runs)
    goodput = goodput_by_tier(runs, requests, tiers)
    return {
        "comparison": campaign_comparison(warehouse, campaign_id),
        "slo_goodput": goodput,
        "regime_map": regime_map(runs, requests),
        "recommendations": recommendations(goodput, campaign_id),
    }


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
