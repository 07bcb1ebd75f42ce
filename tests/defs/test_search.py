"""The search job on the pipeline itself; the search's logic is tested on a double in
tests/test_search.py."""

from __future__ import annotations

import dagster as dg
import yaml

from pdpipeline.definitions import defs
from pdpipeline.defs.partitions import campaigns
from tests.support.local import search_profile_data


def test_the_search_job_runs_round_0_through_the_pipeline(tmp_path, tiny_model):
    """The job's wiring, on the pipeline itself: round 0 is a campaign partition, and a profile
    whose model is missing stops it at hardware_check, before any server, naming the cause."""
    data = search_profile_data(tiny_model)
    data["model"] |= {"dir": str(tmp_path / "no-such-model"), "tokenizer": str(tiny_model)}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("search").execute_in_process(
        instance=instance,
        run_config={
            "ops": {"crossover_search": {"config": {"budget_minutes": 5}}},
            "resources": {
                "profile": {"config": {"path": str(path)}},
                "warehouse": {"config": {"path": str(tmp_path / "w.duckdb")}},
                "cluster": {"config": {"log_dir": str(tmp_path / "logs")}},
            },
        },
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    cause = failure.step_failure_data.error.cause
    assert cause.cls_name == "CampaignFailedError"
    assert "no-such-model not found" in cause.message
    (partition,) = instance.get_dynamic_partitions(campaigns.name)
    assert partition.startswith("test-local-")
    assert not (tmp_path / "logs").exists()
