"""Hosts in network namespaces, reached over SSH by their own addresses: what each host sees of
the lab's links, and a host dropping off the network in the middle of a run."""

from __future__ import annotations

import asyncio
import subprocess
import time

import aiohttp
import dagster as dg
import pytest
import yaml

from pdpipeline.defs.campaign import run_campaign
from pdpipeline.environment import probe_all
from pdpipeline.errors import CampaignFailedError
from pdpipeline.launch.hosts import launchers_for
from pdpipeline.profile import Profile
from pdpipeline.warehouse.store import Warehouse
from tests.support.netns import (
    KV_DEVICE,
    NET_DEVICE,
    PREFIX,
    ip,
    lab_profile_data,
    remove_leftovers,
)
from tests.support.servers import serving

pytestmark = [pytest.mark.netns, pytest.mark.ssh]


async def test_each_host_is_reached_by_its_own_address(netns_lab, tiny_model, tmp_path):
    profile = Profile.model_validate(lab_profile_data(netns_lab, tiny_model, tmp_path))
    launchers = launchers_for(profile, tmp_path / "logs", "routes")
    b = netns_lab.hosts["b"]
    try:
        for host in profile.hosts:
            addresses = await launchers[host.name].run_command(["ip", "-o", "addr", "show"])
            assert f" {host.address}/24 " in addresses
        # From a, host b's HTTP address is across the bridge and its KV address across kv0.
        route = launchers["gpu1"].run_command
        assert f"dev {NET_DEVICE}" in await route(["ip", "route", "get", b.address])
        assert f"dev {KV_DEVICE}" in await route(["ip", "route", "get", b.kv_address])
    finally:
        for launcher in launchers.values():
            await launcher.close()


async def test_hardware_check_finds_the_rate_the_kv_link_is_shaped_to(
    netns_lab, tiny_model, tmp_path
):
    profile = Profile.model_validate(lab_profile_data(netns_lab, tiny_model, tmp_path))
    launchers = launchers_for(profile, tmp_path / "logs", "probe")

    async def rates() -> dict[str, float | None]:
        facts = await probe_all(launchers, profile)
        return {f["host"]: f["link_gbit_per_s"] for f in facts}

    try:
        netns_lab.shape(150)
        assert await rates() == {"gpu1": 0.15, "gpu2": 0.15, "proxy-node": None}
        # A veth's own "speed" says nothing of the path: unshaped, the rate is not known.
        netns_lab.unshape()
        assert await rates() == {"gpu1": None, "gpu2": None, "proxy-node": None}
    finally:
        for launcher in launchers.values():
            await launcher.close()


def test_a_lab_left_by_a_killed_test_process_is_removed_by_the_next(netns_lab):
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid no process has now
    leftover = f"{PREFIX}-{gone.pid}-beef-s"
    ip(f"netns add {leftover}")
    ip(f"link add {PREFIX}beefc type veth peer name ctl netns {leftover}")
    assert leftover in remove_leftovers()
    assert leftover not in ip("netns list")
    assert f"{PREFIX}beefc" not in ip("-br link")
    # The live lab of this test process stays.
    assert netns_lab.switch in ip("netns list")


# Long enough that the link goes down in the middle of a point: eight requests of 512 output
# tokens, two at a time.
LONG_POINT = {
    "points": [{"input_len": 512, "output_len": 512}],
    "concurrency": [2],
    "requests_per_point": 8,
    "warmup_requests": 0,
}


async def _answers(url: str) -> bool:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            async with session.get(url) as response:
                return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


@pytest.mark.vllm
async def test_host_dropping_off_the_network_ends_the_arm_naming_it(
    netns_lab, tiny_model, tmp_path
):
    """Host b's link goes down mid-point: the arm ends with one line naming the host and the
    point, writes no rows, and once the link is back its processes are stopped there too."""
    data = lab_profile_data(netns_lab, tiny_model, tmp_path / "remote", **LONG_POINT)
    data["arms"] = {"disaggregated": data["arms"]["disaggregated"]}
    path = tmp_path / "two-node.yaml"
    path.write_text(yaml.safe_dump(data))
    profile = Profile.model_validate(data)
    b, p = netns_lab.hosts["b"], netns_lab.hosts["p"]
    decode_url = f"http://{b.address}:{profile.vllm.http_port(1)}"
    proxy_url = f"http://{p.address}:{profile.proxy.port}/health"
    campaign = asyncio.create_task(
        asyncio.to_thread(
            run_campaign,
            str(path),
            instance=dg.DagsterInstance.ephemeral(),
            warehouse_path=str(tmp_path / "w.duckdb"),
            log_dir=str(tmp_path / "logs"),
            assets=["hardware_check", "disaggregated_run"],
        )
    )
    try:
        await asyncio.wait_for(serving(decode_url), 600)
        netns_lab.set_link("b", up=False)
        # The arm's teardown stops the proxy first: the failure was seen. Host b comes back
        # while the teardown still tries to reach it.
        deadline = time.monotonic() + 120
        while await _answers(proxy_url):
            assert time.monotonic() < deadline, "the lost host went unnoticed"
            await asyncio.sleep(0.5)
    finally:
        netns_lab.set_link("b", up=True)
    with pytest.raises(CampaignFailedError) as failed:
        await campaign
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith(f"disaggregated_run: host gpu2 ({b.address}:22) stopped answering: ")
    assert "; lost during in512-out512-c2-rep0 of disaggregated" in message
    assert "(running there: decode instance disaggregated-decode-1)" in message
    assert Warehouse(tmp_path / "w.duckdb").query("SELECT count(*) AS n FROM runs")["n"][0] == 0
    for host in ("a", "b", "p"):
        assert netns_lab.processes(host) == [], host
    assert not list((tmp_path / "remote").glob("logs/**/*.pid"))
