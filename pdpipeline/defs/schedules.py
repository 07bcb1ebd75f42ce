"""The nightly schedule: each night a new campaign partition, every asset materialized."""

import os
from datetime import UTC, datetime

import dagster as dg

from pdpipeline.campaign import campaign_id_for
from pdpipeline.defs.campaign import campaign_job
from pdpipeline.defs.partitions import campaigns
from pdpipeline.defs.resources import DEFAULT_PROFILE
from pdpipeline.profile import load_profile


@dg.schedule(
    job=campaign_job,
    cron_schedule=os.environ.get("PDPIPELINE_NIGHTLY_CRON", "0 2 * * *"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_campaign(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Adds tonight's campaign partition (profile PDPIPELINE_PROFILE) and runs every asset."""
    profile = load_profile(DEFAULT_PROFILE).profile
    tick = context.scheduled_execution_time or datetime.now(UTC)
    key = campaign_id_for(profile.name, tick.astimezone(UTC))
    # Schedules cannot return partition requests (sensors can): add the key directly.
    context.instance.add_dynamic_partitions(campaigns.name, [key])
    return dg.RunRequest(run_key=key, partition_key=key)
