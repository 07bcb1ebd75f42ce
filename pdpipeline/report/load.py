"""The report's one reader of the warehouse: a campaign's tables, its requests, its handoffs and
its profile's trend, each read once and brought up to date once (`with_current_columns`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

import polars as pl

from pdpipeline.report.columns import with_current_columns
from pdpipeline.serving.vllm_metrics import NIXL_DESCRIPTORS_COUNT, NIXL_DESCRIPTORS_SUM
from pdpipeline.warehouse.store import Warehouse

# What a campaign's comparison_report derives from what it measured.
DERIVED_TABLES = (
    "comparison",
    "slo_goodput",
    "regime_map",
    "recommendations",
    "kv_cost_model",
    "kv_cost_fit",
    "slo_capacity",
)
# The tables a campaign's export and report hold, in the order an export lists them.
CAMPAIGN_TABLES = ("campaigns", "hosts", "kv_cache", "runs", *DERIVED_TABLES, "launch_servers")


@dataclass(frozen=True)
class Previous:
    """The latest earlier campaign of the same profile with a comparison: what regressed since."""

    campaign_id: str
    comparison: pl.DataFrame
    regime_map: pl.DataFrame


@dataclass(frozen=True)
class Campaign:
    """One campaign as the report reads it: its tables (`runs` all of them), every request's
    columns but the inter-token gaps, and what the figures set it against."""

    campaign_id: str
    tables: Mapping[str, pl.DataFrame]
    requests: pl.DataFrame
    server_metrics: pl.DataFrame  # the NIXL descriptor histograms' deltas, per run and server
    handoffs: pl.DataFrame  # the handoff_breakdown view's runs
    trend: pl.DataFrame  # each series' best per-GPU throughput per campaign of the profile
    previous: Previous | None = field(default=None)

    def __getitem__(self, table: str) -> pl.DataFrame:
        return self.tables[table]

    @cached_property
    def runs(self) -> pl.DataFrame:
        """The runs of its workload matrix: a rate search's runs sit at rates of their own per
        series, so they are compared nowhere (their answer is `slo_capacity`)."""
        return self.tables["runs"].filter(pl.col("searched_for").is_null())

    @property
    def profile_text(self) -> str | None:
        text = self.tables["campaigns"]["profile_text"]
        return text[0] if text.len() else None

    @property
    def stored(self) -> bool:
        """Whether its comparison_report (or `analysis.analysed`) stored its derived tables."""
        return self.tables["comparison"].height > 0

    def with_tables(self, tables: Mapping[str, pl.DataFrame]) -> Campaign:
        """The campaign with `tables` in place of its own, brought up to date."""
        current = {name: with_current_columns(frame) for name, frame in tables.items()}
        return replace(self, tables={**self.tables, **current})

    @cached_property
    def latency_samples(self) -> pl.DataFrame:
        """The requests of its valid runs, each with its run's series and point."""
        of_run = self.runs.filter(pl.col("valid")).select(
            "run_id", "layout", "engine_variant", "variant", "input_len", "output_len",
            "concurrency", "request_rate",
        )  # fmt: skip
        return self.requests.select("run_id", "arm", "ok", "ttft_s", "tpot_s").join(
            of_run, on="run_id"
        )


def read_campaign(warehouse: Warehouse, campaign_id: str) -> Campaign:
    """Everything the report and its analysis read of one campaign, in one pass."""
    tables = {
        t: warehouse.query(f"SELECT * FROM {t} WHERE campaign_id = ?", [campaign_id])
        for t in CAMPAIGN_TABLES
    }
    requests = warehouse.query(
        "SELECT * EXCLUDE (itl_s) FROM requests WHERE campaign_id = ?", [campaign_id]
    )
    metrics = warehouse.query(
        "SELECT run_id, server, name, delta FROM server_metrics "
        "WHERE campaign_id = ? AND name IN (?, ?)",
        [campaign_id, NIXL_DESCRIPTORS_SUM, NIXL_DESCRIPTORS_COUNT],
    )
    handoffs = warehouse.query(
        "SELECT * FROM handoff_breakdown WHERE campaign_id = ?", [campaign_id]
    )
    profile = tables["campaigns"]["profile_name"]
    trend = warehouse.query(
        """
        SELECT k.campaign_id, k.started_at, r.arm, r.layout, r.engine_variant, r.variant,
               max(r.output_throughput_per_gpu) AS output_throughput_per_gpu
        FROM runs r JOIN campaigns k USING (campaign_id)
        WHERE k.profile_name = ? AND r.valid AND r.searched_for IS NULL
        GROUP BY ALL ORDER BY k.started_at
        """,
        [profile[0] if profile.len() else None],
    )
    return Campaign(
        campaign_id,
        {name: with_current_columns(frame) for name, frame in tables.items()},
        with_current_columns(requests),
        metrics,
        handoffs,
        with_current_columns(trend),
        read_previous(warehouse, campaign_id),
    )


def previous_campaign(warehouse: Warehouse, campaign_id: str) -> str | None:
    """The latest earlier campaign of the same profile that has a comparison."""
    rows = warehouse.query(
        """
        SELECT p.campaign_id FROM campaigns p, campaigns c
        WHERE c.campaign_id = ? AND p.profile_name = c.profile_name
          AND p.started_at < c.started_at
          AND p.campaign_id IN (SELECT campaign_id FROM comparison)
        ORDER BY p.started_at DESC LIMIT 1
        """,
        [campaign_id],
    )
    return rows["campaign_id"][0] if rows.height else None


def read_previous(warehouse: Warehouse, campaign_id: str) -> Previous | None:
    """The previous campaign's comparison and regime map, as stored; None without one."""
    previous = previous_campaign(warehouse, campaign_id)
    if previous is None:
        return None
    comparison, regime = (
        warehouse.query(f"SELECT * FROM {t} WHERE campaign_id = ?", [previous])
        for t in ("comparison", "regime_map")
    )
    return Previous(previous, with_current_columns(comparison), with_current_columns(regime))
