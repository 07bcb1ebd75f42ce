"""The crossover search as a job: launched from the UI with a budget, its rounds are campaign
partitions of their own, its recommendation stored under the first round's campaign.

No `from __future__ import annotations` here: Dagster reads the op's config type from its
annotation at definition time."""

from collections.abc import Callable

import dagster as dg
import polars as pl

from pdpipeline.defs.campaign import run_campaign
from pdpipeline.defs.resources import ClusterResource, ProfileResource, WarehouseResource
from pdpipeline.search import Round, run_search


def search_campaigns(
    profile_path: str,
    budget_minutes: float,
    instance: dg.DagsterInstance | None = None,
    warehouse_path: str | None = None,
    log_dir: str | None = None,
    max_rounds: int = 4,
    say: Callable[[str], None] = print,
) -> tuple[list[Round], pl.DataFrame]:
    """The search on the pipeline: each round a campaign (a Dagster partition of its own)."""

    def measure(path: str) -> str:
        return run_campaign(path, instance, warehouse_path, log_dir).id

    return run_search(profile_path, budget_minutes, measure, warehouse_path, max_rounds, say)


class SearchConfig(dg.Config):
    budget_minutes: float = 60.0
    max_rounds: int = 4


@dg.op(description="A coarse grid, then rounds on the loads that decide, within the budget.")
def crossover_search(
    context: dg.OpExecutionContext,
    config: SearchConfig,
    profile: ProfileResource,
    cluster: ClusterResource,
    warehouse: WarehouseResource,
) -> dg.Output[None]:
    rounds, found = search_campaigns(
        profile.path,
        config.budget_minutes,
        context.instance,
        warehouse.path,
        cluster.log_dir,
        config.max_rounds,
        context.log.info,
    )
    return dg.Output(
        None,
        metadata={
            "campaign_id": rounds[0].campaign_id,
            "rounds": len(rounds),
            "recommendation": dg.MetadataValue.md(
                "\n".join(f"- {s}" for s in found["sentence"].to_list())
            ),
        },
    )


@dg.job(description="Search toward where disaggregation wins: `pdpipeline search` in the UI.")
def search():
    crossover_search()
