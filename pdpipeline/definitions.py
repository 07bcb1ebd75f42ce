"""The one code location: assets, checks, resources, job and schedule."""

from __future__ import annotations

import dagster as dg

from pdpipeline.defs.arms import disaggregated_run, replicated_run, single_node_run
from pdpipeline.defs.environment import hardware_check
from pdpipeline.defs.kv_cache import kv_cache_analysis
from pdpipeline.defs.report import comparison_report
from pdpipeline.defs.resources import ClusterResource, ProfileResource, WarehouseResource
from pdpipeline.defs.schedules import campaign_job, nightly_campaign
from pdpipeline.defs.search import search

defs = dg.Definitions(
    assets=[
        hardware_check,
        kv_cache_analysis,
        single_node_run,
        replicated_run,
        disaggregated_run,
        comparison_report,
    ],
    resources={
        "profile": ProfileResource(),
        "cluster": ClusterResource(),
        "warehouse": WarehouseResource(),
    },
    jobs=[campaign_job, search],
    schedules=[nightly_campaign],
    # Assets of a run execute one after another: two arms never share the cluster.
    executor=dg.in_process_executor,
)
