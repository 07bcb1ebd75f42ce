"""Real servers in tests: an arm's services running, their process groups, a server killed
mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

from pdpipeline.errors import ServerDiedError
from pdpipeline.launch.hosts import launchers_for
from pdpipeline.loadgen.metrics import parse
from pdpipeline.plan import Instance, plan_arm
from pdpipeline.profile import Profile
from pdpipeline.runner import run_arm, start_all


def group_alive(pgid: int) -> bool:
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


class Arm:
    """An arm's services running for the tests of one module."""

    def __init__(
        self, profile: Profile, arm: str, log_dir: Path, variant: str | None = None
    ) -> None:
        self.plan = plan_arm(profile, arm, variant)
        self.launchers = launchers_for(profile, log_dir)
        self.stack = AsyncExitStack()
        self.services: dict = {}

    async def __aenter__(self) -> Arm:
        self.services = await start_all(self.stack, self.launchers, self.plan)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stack.aclose()

    def url(self, name: str) -> str:
        return self.services[name][1].url

    @property
    def pids(self) -> list[int]:
        return [service.pid for _, service in self.services.values()]


# Long enough that a run is still under way when its first request reaches a server: 8 requests
# of 512 output tokens, four at a time, with no warm-up before the measured ones.
LONG_RUN = {
    "points": [{"input_len": 256, "output_len": 512}],
    "warmup_requests": 0,
    "request_timeout_s": 300,
}


def arm_ports(plan) -> list[int]:
    return [p for i in plan.instances for p in i.service.ports] + [plan.proxy.port]


def listening_groups(ports: list[int]) -> dict[int, int]:
    """Port -> process group of the process listening on it, for the ports that have one."""
    groups = {}
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port in ports and conn.pid:
            try:
                groups[conn.laddr.port] = os.getpgid(conn.pid)
            except ProcessLookupError:
                continue
    return groups


async def serving(url: str) -> None:
    """Return once the metrics of the server at `url` show two requests (running or done): a run
    is under way. The preflight of a disaggregated launch sends one before the run."""
    busy = ("vllm:num_requests_running", "vllm:request_success_total")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            try:
                async with session.get(url + "/metrics") as response:
                    metrics = parse(await response.text())
                if sum(v for (name, _), v in metrics.items() if name in busy) >= 2:
                    return
            except (aiohttp.ClientError, TimeoutError):
                pass  # not started yet
            await asyncio.sleep(0.05)


async def kill_once_serving(url: str, port: int, ports: list[int]) -> tuple[float, set[int]]:
    """SIGKILL the process group of the server at `url` (listening on `port`) as soon as its
    metrics show a request, i.e. while a run is under way.

    Returns when it was killed and the process groups then listening on `ports` (the arm's),
    for checking afterwards that none is left."""
    await serving(url)
    groups = listening_groups(ports)
    os.killpg(groups[port], signal.SIGKILL)
    return time.monotonic(), set(groups.values())


@dataclass(frozen=True)
class Killed:
    """How an arm ended whose `victim` was killed mid-run (`run_arm_killing`)."""

    victim: Instance
    message: str  # the ServerDiedError that ended the arm
    killed_at: float  # time.monotonic() of the kill
    ended_at: float  # time.monotonic() when run_arm raised
    groups: set[int]  # the arm's process groups at the kill


async def run_arm_killing(profile: Profile, arm: str, role: str, log_dir: Path) -> Killed:
    """Run `arm` (with a workload long enough, e.g. LONG_RUN) and SIGKILL its first `role`
    instance's process group once it serves; the arm must end with a ServerDiedError."""
    plan = plan_arm(profile, arm)
    victim = next(i for i in plan.instances if i.server.role == role)
    killer = asyncio.create_task(
        kill_once_serving(victim.server.url, victim.service.port, arm_ports(plan))
    )
    try:
        try:
            await run_arm(profile, arm, "killed", log_dir, print)
        except ServerDiedError as died:
            message, ended_at = str(died), time.monotonic()
        else:
            raise AssertionError(f"{arm} finished although {victim.server.name} was killed")
    finally:
        killer.cancel()
    killed_at, groups = await killer
    return Killed(victim, message, killed_at, ended_at, groups)
