"""Remote hosts over a real sshd: launch, check, tear down, and the failures users meet. A whole
campaign over SSH runs on the namespace lab (tests/netns/test_campaign.py)."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from pdpipeline.errors import HostUnreachableError, ServerStartError
from pdpipeline.launch.ssh import SshLauncher
from pdpipeline.plan import plan_arm, proxy_service, server_service
from pdpipeline.profile import Profile
from pdpipeline.runner import run_arm
from tests.support.local import free_port, local_profile_data
from tests.support.servers import LONG_RUN, group_alive, run_arm_killing
from tests.support.sshd import Sshd, keygen

pytestmark = pytest.mark.ssh


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def ssh_profile(tiny_model: Path, sshd: Sshd, work_dir: Path, **ssh) -> Profile:
    """The local layout with every host, the proxy's included, reached over SSH."""
    data = local_profile_data(tiny_model)
    host = data["hosts"][0]
    host |= {
        "reach": "ssh",
        "ssh": sshd.settings(**ssh),
        "python": sys.executable,
        "work_dir": str(work_dir),
    }
    return Profile.model_validate(data)


def remote_pids(work_dir: Path) -> list[int]:
    return [int(p.read_text()) for p in work_dir.glob("logs/**/*.pid")]


async def test_wrong_host_key_is_refused(sshd, tiny_model, tmp_path):
    other = tmp_path / "known_hosts"
    other.write_text(f"[127.0.0.1]:{sshd.port} {keygen(tmp_path / 'impostor')}\n")
    profile = ssh_profile(tiny_model, sshd, tmp_path, known_hosts=str(other))
    launcher = SshLauncher(profile.hosts[0], "t")
    with pytest.raises(HostUnreachableError, match=r"host local .* refused"):
        await launcher.run_command(["true"])


async def test_unreachable_host_fails_within_seconds_naming_it(sshd, tiny_model, tmp_path):
    profile = ssh_profile(tiny_model, sshd, tmp_path, port=free_port())
    launcher = SshLauncher(profile.hosts[0], "t")
    started = time.monotonic()
    with pytest.raises(HostUnreachableError, match=r"host local \(127.0.0.1:\d+\) unreachable"):
        await launcher.run_command(["true"])
    assert time.monotonic() - started < 15  # three quick connect attempts, not a hang


async def test_remote_server_death_is_reported_with_its_log_tail(sshd, tiny_model, tmp_path):
    profile = ssh_profile(tiny_model, sshd, tmp_path)
    instance = plan_arm(profile, "single").instances[0]
    broken = server_service(replace(instance.server, extra_args=("--dtype", "no-such-dtype")), 120)
    launcher = SshLauncher(profile.hosts[0], "run")
    with pytest.raises(ServerStartError, match=r"single-0 on local:.* exited") as failure:
        async with launcher.running(broken):
            pass
    assert "no-such-dtype" in failure.value.log_tail
    await launcher.close()
    assert remote_pids(tmp_path) == []


def unreachable_backend(profile):
    """A backend on port 9 (discard): nothing answers; the proxy only has to start."""
    return replace(plan_arm(profile, "single").instances[0].server, port=9)


async def test_dropped_connection_still_stops_by_pid_file(sshd, tiny_model, tmp_path):
    profile = ssh_profile(tiny_model, sshd, tmp_path)
    spec = proxy_service(profile, [unreachable_backend(profile)], "proxy-drop")
    launcher = SshLauncher(profile.hosts[0], "run")
    service = await launcher.spawn(spec)
    await launcher.wait_ready(service)
    assert group_alive(service.pid)
    launcher._conn.abort()  # the network goes away mid-run
    await asyncio.sleep(0.5)
    # A fresh launcher (a rerun) reconnects and stops what the pid files name.
    again = SshLauncher(profile.hosts[0], "run")
    assert await again.stop_leftovers() == ["proxy"]
    await again.close()
    assert not group_alive(service.pid)
    assert remote_pids(tmp_path) == []


@pytest.mark.vllm
async def test_cancelled_arm_leaves_no_remote_process(sshd, tiny_model, tmp_path):
    profile = ssh_profile(tiny_model, sshd, tmp_path)
    task = asyncio.create_task(run_arm(profile, "single", "cancel", tmp_path / "logs", print))
    deadline = time.monotonic() + 60
    while not remote_pids(tmp_path):  # the server was launched and is starting
        assert time.monotonic() < deadline and not task.done()
        await asyncio.sleep(0.5)
    pids = remote_pids(tmp_path)
    task.cancel()  # what a run cancelled from the UI does to the arm
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not [pid for pid in pids if group_alive(pid)]
    assert remote_pids(tmp_path) == []


@pytest.mark.vllm
async def test_remote_server_killed_mid_run_ends_the_arm_with_one_line_naming_it(
    sshd, tiny_model, tmp_path
):
    """Killed with its whole process group, the remote server's status is still known: the
    shell that waits for it lives in a session of its own."""
    data = ssh_profile(tiny_model, sshd, tmp_path).model_dump(exclude_none=True)
    data["workload"] |= LONG_RUN
    profile = Profile.model_validate(data)
    killed = await run_arm_killing(profile, "single", "standalone", tmp_path / "logs")
    assert "\n" not in killed.message
    assert killed.message.startswith(
        f"standalone instance single-0 on host local port {killed.victim.service.port} "
        "ended (killed by SIGKILL) during in256-out512-c4-rep0"
    )
    assert "; log tail: " in killed.message
    assert not any(group_alive(g) for g in killed.groups)
    assert remote_pids(tmp_path) == []


async def test_services_are_reached_through_forwarded_ports(sshd, tiny_model, tmp_path):
    profile = ssh_profile(tiny_model, sshd, tmp_path, forward_ports=True)
    spec = proxy_service(profile, [unreachable_backend(profile)], "proxy-forwarded")
    launcher = SshLauncher(profile.hosts[0], "fwd")
    async with launcher.running(spec) as service:
        # The controller talks to a local end of an SSH forward, not to the host's port.
        assert service.url.startswith("http://127.0.0.1:")
        assert not service.url.endswith(f":{spec.port}")
        async with aiohttp.ClientSession() as session:
            async with session.get(service.url + "/health") as response:
                assert (await response.json())["instance"] == "proxy-forwarded"
    await launcher.close()
    assert remote_pids(tmp_path) == []
