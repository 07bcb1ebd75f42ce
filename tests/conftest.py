"""Shared fixtures and helpers: the tiny model, free loopback ports, a server killed mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path

import aiohttp
import psutil
import pytest

from pdpipeline.loadgen.metrics import parse
from pdpipeline.serving.tinymodel import build_tiny_model, is_built

ROOT = Path(__file__).resolve().parent.parent
TINY_MODEL = ROOT / "models" / "tiny-llama"


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The tiny model dir `make` builds; built here when a test runs without make."""
    if not is_built(TINY_MODEL):
        build_tiny_model(TINY_MODEL)
    return TINY_MODEL


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ephemeral_ports() -> range:
    """The ports the kernel gives the local end of outgoing connections."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default


def free_port_block(count: int, start: int = 20000, span: int = 4000) -> int:
    """`count` consecutive free loopback ports at a random place in [start, start + span).

    Random, so a test run and another campaign on the same machine rarely reach for the same
    ports between the check and the bind. Never in the kernel's ephemeral range: an outgoing
    connection (a health poll, a metrics scrape, a NIXL link) takes its local port from there,
    and until 60 s after it closed (TIME_WAIT) nothing can bind that port, SO_REUSEADDR or not.
    A campaign binds its ports again arm after arm for minutes, so such a port, free when
    picked, could be taken when the next arm starts."""
    import random

    from pdpipeline.launch.local import port_is_free

    ephemeral = ephemeral_ports()
    if start < ephemeral.stop and ephemeral.start < start + span:
        raise RuntimeError(
            f"test ports {start}-{start + span - 1} overlap the kernel's ephemeral ports "
            f"{ephemeral.start}-{ephemeral.stop - 1} (net.ipv4.ip_local_port_range)"
        )
    candidates = range(start, start + span - count + 1, count)
    first = random.randrange(len(candidates))
    for i in range(len(candidates)):
        port = candidates[(first + i) % len(candidates)]
        if all(port_is_free("127.0.0.1", port + j) for j in range(count)):
            return port
    raise RuntimeError(f"no {count} consecutive free ports in {start}-{start + span - 1}")


def local_profile_data(model_dir: Path, **workload) -> dict:
    """A local profile like profiles/local.yaml, on ports free now, with a small workload."""
    base = free_port_block(4, 20000)
    side = free_port_block(4, 24000)
    proxy = free_port_block(1, 28000)
    return {
        "name": "test-local",
        "hosts": [
            {
                "name": "local",
                "address": "127.0.0.1",
                "device_kind": "cpu",
                "devices": [0, 1],
                "env": {"VLLM_CPU_KVCACHE_SPACE": "1"},
            }
        ],
        "model": {"dir": str(model_dir), "served_name": "tiny", "load_format": "dummy"},
        "proxy": {"host": "local", "port": proxy},
        "vllm": {
            "base_port": base,
            "side_channel_base_port": side,
            "max_model_len": 1024,
            "enforce_eager": True,
            "start_timeout_s": 300,
        },
        "arms": {
            "single": {"instance": {"host": "local", "devices": [0]}},
            "replicated": {
                "instances": [{"host": "local", "devices": [0]}, {"host": "local", "devices": [1]}]
            },
            "disaggregated": {
                "prefill": [{"host": "local", "devices": [0]}],
                "decode": [{"host": "local", "devices": [1]}],
            },
        },
        "workload": {
            "points": [{"input_len": 256, "output_len": 16}],
            "concurrency": [4],
            "requests_per_point": 8,
            # Tests count requests: the window needs only one start after the first wave, so a
            # point sends exactly requests_per_point (a campaign sizes windows by time instead).
            "min_window_s": 0,
            "min_window_requests": 1,
            "warmup_requests": 2,
            "repeats": 1,
        }
        | workload,
    }


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


async def kill_once_serving(url: str, port: int, ports: list[int]) -> tuple[float, set[int]]:
    """SIGKILL the process group of the server at `url` (listening on `port`) as soon as its
    metrics show a request, i.e. while a run is under way.

    Returns when it was killed and the process groups then listening on `ports` (the arm's),
    for checking afterwards that none is left."""
    busy = ("vllm:num_requests_running", "vllm:request_success_total")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            try:
                async with session.get(url + "/metrics") as response:
                    metrics = parse(await response.text())
                if sum(v for (name, _), v in metrics.items() if name in busy) > 0:
                    break
            except aiohttp.ClientError:
                pass  # not started yet
            await asyncio.sleep(0.05)
    groups = listening_groups(ports)
    os.killpg(groups[port], signal.SIGKILL)
    return time.monotonic(), set(groups.values())


@pytest.fixture
def local_profile(tiny_model):
    from pdpipeline.profile import Profile

    return Profile.model_validate(local_profile_data(tiny_model))
