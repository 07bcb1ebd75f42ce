"""This machine as a test host: the checkout, free loopback ports, a local profile on them."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = ROOT / "models" / "tiny-llama"


def free_port() -> int:
    """A loopback port nothing listens on right now, outside the kernel's ephemeral range (a
    service bound seconds later, like the Dagster UI, must not meet an outgoing connection's
    port there: see `free_port_block`)."""
    return free_port_block(1, 16000)


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
    # Tests run by several pytest-xdist workers at once each pick from their own share.
    worker, workers = xdist_worker()
    candidates = candidates[worker::workers]
    first = random.randrange(len(candidates))
    for i in range(len(candidates)):
        port = candidates[(first + i) % len(candidates)]
        if all(port_is_free("127.0.0.1", port + j) for j in range(count)):
            return port
    raise RuntimeError(f"no {count} consecutive free ports in {start}-{start + span - 1}")


def xdist_worker() -> tuple[int, int]:
    """This process's pytest-xdist worker number and the number of workers; (0, 1) alone."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name.removeprefix("gw")), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


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


def layouts_profile_data(model_dir: Path, block_sizes: tuple[int, ...], **workload) -> dict:
    """`local_profile_data` with one 1P1D layout (pull and push) against the two replicas it
    sizes, and KV block sizes as engine variants of every arm ("block32", ...)."""
    data = local_profile_data(model_dir, **workload)
    data["arms"]["replicated"] = {}
    data["arms"]["disaggregated"] = {
        "layouts": ["1P1D"],
        "variants": [
            {"name": "pull", "kv_connector": "NixlConnector"},
            {"name": "push", "kv_connector": "NixlPushConnector"},
        ],
    }
    data["engine_variants"] = [
        {"name": f"block{size}", "vllm_args": ["--block-size", str(size)]} for size in block_sizes
    ]
    return data


def search_profile_data(tiny_model: Path) -> dict:
    """Two layouts' worth of series at a light and a heavy load, two repeats, one tier: what
    the crossover search decides on."""
    data = layouts_profile_data(tiny_model, (16, 128))
    data["workload"] |= {"concurrency": [2, 64], "repeats": 2}
    data["slo_tiers"] = {"batch": {"ttft_ms": 5000, "tpot_ms": 100}}
    return data


def write_profile(path: Path, data: dict) -> str:
    """`data` as a profile file at `path`; its path, as the pipeline takes it."""
    path.write_text(yaml.safe_dump(data))
    return str(path)
