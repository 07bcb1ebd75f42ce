"""Run a whole campaign in-process, the way the nightly schedule does, on a chosen profile."""

from __future__ import annotations

import os

import dagster as dg

from pdpipeline.campaign import Campaign
from pdpipeline.errors import PdPipelineError


class CampaignFailedError(PdPipelineError):
    """A step of the campaign failed; the message is that step's first error line."""


def run_campaign(profile_path: str, instance: dg.DagsterInstance | None = None) -> Campaign:
    """Materialize every asset (and check) on `profile_path`; history goes to DAGSTER_HOME."""
    from pdpipeline.definitions import defs

    if instance is None:
        has_home = bool(os.environ.get("DAGSTER_HOME"))
        instance = dg.DagsterInstance.get() if has_home else dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("campaign").execute_in_process(
        instance=instance,
        run_config={"resources": {"profile": {"config": {"path": profile_path}}}},
        raise_on_error=False,
    )
    if not result.success:
        raise CampaignFailedError(_first_failure(result))
    return result.output_for_node("hardware_check")


def _first_failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            error = event.step_failure_data.error
            while error.cause is not None:  # the user's exception, not Dagster's wrapper
                error = error.cause
            return f"{event.step_key}: {error.message.strip().splitlines()[0]}"
    failed_checks = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and not e.asset_check_evaluation_data.passed
    ]
    if failed_checks:
        check = failed_checks[0]
        return f"check {check.check_name} failed: {check.description}"
    return "the campaign run failed"
