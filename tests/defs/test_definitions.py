"""The code location: its assets, jobs and schedule load, and the nightly schedule adds and
runs a campaign partition."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from pdpipeline.definitions import defs

ASSETS = (
    "hardware_check",
    "kv_cache_analysis",
    "single_node_run",
    "replicated_run",
    "disaggregated_run",
    "comparison_report",
)


def test_definitions_load_with_schedule():
    dg.Definitions.validate_loadable(defs)
    schedule = defs.resolve_schedule_def("nightly_campaign")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    assert {key.to_user_string() for key in defs.resolve_all_asset_keys()} == set(ASSETS)
    job = defs.resolve_job_def("campaign")
    assert job.partitions_def.name == "campaign"
    assert defs.resolve_job_def("search").op_selection is None  # the search job is there too


def test_nightly_schedule_adds_a_campaign_partition_and_runs_it():
    schedule = defs.resolve_schedule_def("nightly_campaign")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 11, 28, 2, 0, tzinfo=UTC),
            repository_def=defs.get_repository_def(),
        )
        request = schedule.evaluate_tick(context).run_requests[0]
        assert request.partition_key == "local-20261128T020000Z"
        assert instance.get_dynamic_partitions("campaign") == ["local-20261128T020000Z"]
