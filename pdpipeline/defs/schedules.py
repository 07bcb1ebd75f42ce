"""The campaign job and its nightly schedule."""

import os

import dagster as dg

campaign_job = dg.define_asset_job(
    "campaign",
    selection=dg.AssetSelection.all(),
    description="Every asset of one campaign: hosts, KV analysis, the three arms, the report.",
)

nightly_campaign = dg.ScheduleDefinition(
    name="nightly_campaign",
    job=campaign_job,
    cron_schedule=os.environ.get("PDPIPELINE_NIGHTLY_CRON", "0 2 * * *"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
