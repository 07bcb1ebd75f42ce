"""The crossover search as a job: launched from the UI with a budget, its rounds are campaign
partitions of their own, its recommendation stored under the first round's campaign."""

import dagster as dg

from pdpipeline.defs.resources import ClusterResource, ProfileResource, WarehouseResource
from pdpipeline.search import run_search


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
    rounds, found = run_search(
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
