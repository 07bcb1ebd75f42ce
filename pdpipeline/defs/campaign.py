"""The campaign: every asset of one campaign partition as a job, and running it in-process the
way the nightly schedule does, on a chosen profile."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import dagster as dg

from pdpipeline.campaign import Campaign, campaign_id_for, latest_campaign_id, load_campaign
from pdpipeline.defs.arms import disaggregated_run, replicated_run, single_node_run
from pdpipeline.defs.environment import hardware_check
from pdpipeline.defs.kv_cache import kv_cache_analysis
from pdpipeline.defs.partitions import campaigns
from pdpipeline.defs.report import comparison_report
from pdpipeline.defs.resources import ClusterResource, ProfileResource, WarehouseResource
from pdpipeline.errors import CampaignFailedError
from pdpipeline.paths import WAREHOUSE_PATH
from pdpipeline.profile import load_profile
from pdpipeline.warehouse.store import Warehouse

campaign_job = dg.define_asset_job(
    "campaign",
    selection=dg.AssetSelection.all(),
    description="Every asset of one campaign: hosts, KV analysis, the three arms, the report.",
)

# The assets, their resources and the job that materializes them: what `run_campaign` executes,
# and the part of the code location (definitions.py) that the search and schedule build on.
campaign_defs = dg.Definitions(
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
    jobs=[campaign_job],
    # Assets of a run execute one after another: two arms never share the cluster.
    executor=dg.in_process_executor,
)


def run_campaign(
    profile_path: str,
    instance: dg.DagsterInstance | None = None,
    warehouse_path: str | None = None,
    log_dir: str | None = None,
    assets: list[str] | None = None,
    campaign_id: str | None = None,
) -> Campaign | None:
    """Materialize `assets` (default: every asset and check) for campaign partition `campaign_id`.

    Without an id, a new campaign on `profile_path` when hardware_check is selected, else the
    latest stored one. Run history goes to DAGSTER_HOME. Returns the campaign's stored record."""
    if instance is None:
        has_home = bool(os.environ.get("DAGSTER_HOME"))
        instance = dg.DagsterInstance.get() if has_home else dg.DagsterInstance.ephemeral()
    warehouse = Warehouse(warehouse_path or WAREHOUSE_PATH)
    if campaign_id is None:
        # A selection with hardware_check starts a campaign; one without it continues the latest.
        if assets and "hardware_check" not in assets:
            campaign_id = latest_campaign_id(warehouse)
        else:
            profile = load_profile(profile_path).profile
            campaign_id = campaign_id_for(profile.name, datetime.now(UTC))
    instance.add_dynamic_partitions(campaigns.name, [campaign_id])
    resources: dict = {"profile": {"config": {"path": profile_path}}}
    if warehouse_path:
        resources["warehouse"] = {"config": {"path": warehouse_path}}
    if log_dir:
        resources["cluster"] = {"config": {"log_dir": log_dir}}
    result = campaign_defs.resolve_job_def(campaign_job.name).execute_in_process(
        instance=instance,
        partition_key=campaign_id,
        # Progress lines (INFO) on the console; Dagster's step-by-step DEBUG events stay in the
        # run's event log, visible in the UI.
        run_config={
            "resources": resources,
            "loggers": {"console": {"config": {"log_level": "INFO"}}},
        },
        asset_selection=[dg.AssetKey(name) for name in assets] if assets else None,
        raise_on_error=False,
    )
    if not result.success:
        done = [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()]
        completed = f"completed: {', '.join(done)}" if done else "no asset completed"
        raise CampaignFailedError(f"{_first_failure(result)} ({completed})")
    return load_campaign(warehouse, campaign_id)


def _first_failure(result: dg.ExecuteInProcessResult) -> str:
    """The cause of a failed run in one line: a failed blocking check, else the first step error."""
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            check = event.asset_check_evaluation_data
            if not check.passed and check.blocking:
                return f"check {check.check_name} failed: {check.description}"
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            error = event.step_failure_data.error
            # The user's exception, not Dagster's wrappers around it (nor what it wraps itself).
            while error.cls_name.startswith("Dagster") and error.cause is not None:
                error = error.cause
            message = error.message.strip().splitlines()[0]
            # Our own errors read as sentences; a foreign one keeps its class name.
            if message.startswith("pdpipeline."):
                message = message.partition(": ")[2]
            return f"{event.step_key}: {message}"
    return "the campaign run failed"
