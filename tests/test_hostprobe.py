"""The host probe, run for real on this machine, and its parsers on captured tool output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pdpipeline.environment import link_rate
from pdpipeline.hostprobe import parse_interface_of, parse_nvlink, parse_shaped_rate

# `nvidia-smi nvlink -s` on a two-GPU Hopper host (GPU 1's 18 links cut to 4 for brevity).
NVLINK_OUTPUT = (
    "GPU 0: NVIDIA H200 (UUID: GPU-7b3f9af5)\n"
    + "".join(f"\t Link {i}: 26.562 GB/s\n" for i in range(18))
    + "GPU 1: NVIDIA H200 (UUID: GPU-5d65d25b)\n"
    + "".join(f"\t Link {i}: 26.562 GB/s\n" for i in range(4))
    + "\t Link 4: <inactive>\n"
)


def test_nvlink_links_are_summed_per_gpu():
    gpus = parse_nvlink(NVLINK_OUTPUT)
    assert [(g["gpu"], g["links"]) for g in gpus] == [(0, 18), (1, 4)]
    assert abs(gpus[0]["gbyte_per_s"] - 18 * 26.562) < 1e-9
    assert parse_nvlink("") == []


# `ip -o addr show` inside a host of the network-namespace lab (tests/support/netns.py).
IP_ADDR_OUTPUT = """\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: net0@if4    inet 10.213.7.11/24 scope global net0\\       valid_lft forever
3: kv0@if3    inet 10.214.7.11/24 scope global kv0\\       valid_lft forever
3: kv0@if3    inet6 fe80::24d6:feff:fec5:b18c/64 scope link \\       valid_lft forever
"""


def test_the_interface_holding_an_address_is_found():
    assert parse_interface_of(IP_ADDR_OUTPUT, {"10.214.7.11"}) == "kv0"
    assert parse_interface_of(IP_ADDR_OUTPUT, {"fe80::24d6:feff:fec5:b18c"}) == "kv0"
    assert parse_interface_of(IP_ADDR_OUTPUT, {"10.0.0.1"}) is None


def test_a_tbf_qdisc_gives_the_shaped_rate():
    assert parse_shaped_rate("qdisc tbf 8005: root refcnt 3 rate 20Mbit burst 32Kb lat 100ms") == 20
    assert parse_shaped_rate("qdisc tbf 1: root refcnt 2 rate 2.5Gbit burst 1Mb lat 1ms") == 2500
    # Several (an mq root with a tbf per queue): the slowest.
    assert (
        parse_shaped_rate(
            "qdisc mq 0: root\n"
            "qdisc tbf 8001: parent :1 rate 500Kbit burst 16Kb lat 50ms\n"
            "qdisc tbf 8002: parent :2 rate 1Mbit burst 16Kb lat 50ms"
        )
        == 0.5
    )
    assert parse_shaped_rate("qdisc noqueue 0: root refcnt 2") is None
    assert parse_shaped_rate("") is None


def _nic(name: str, speed=None, shaped=None, kv=False) -> dict:
    return {"name": name, "speed_mbit_per_s": speed, "shaped_mbit_per_s": shaped, "kv": kv}


def test_the_link_rate_is_the_kv_interface_s_shaped_rate_or_speed():
    rdma = [{"gbit_per_s": 100.0, "state": "4: ACTIVE"}]
    physical = _nic("eth0", speed=25000)
    veth = _nic("kv0", kv=True)
    assert link_rate({"rdma": [], "nics": [physical, veth | {"shaped_mbit_per_s": 200}]}) == 0.2
    assert link_rate({"rdma": [], "nics": [physical | {"kv": True, "shaped_mbit_per_s": 1e5}]})
    assert link_rate({"rdma": [], "nics": [_nic("eth1", speed=10000, kv=True), physical]}) == 10
    # A veth without a shaper has no rate of its own: the fastest NIC, as without a KV address.
    assert link_rate({"rdma": [], "nics": [physical, veth]}) == 25
    assert link_rate({"rdma": [], "nics": [veth]}) is None
    assert link_rate({"rdma": rdma, "nics": [veth | {"shaped_mbit_per_s": 200}]}) == 100


def test_probe_runs_as_a_standalone_script(tiny_model):
    # The way hardware_check runs it on a host: its source on stdin, the model dir as argument.
    source = Path(__file__).resolve().parent.parent / "pdpipeline" / "hostprobe.py"
    out = subprocess.run(
        [sys.executable, "-", str(tiny_model)],
        input=source.read_bytes(),
        capture_output=True,
        check=True,
    ).stdout
    facts = json.loads(out)
    assert facts["model_present"] and facts["model_bytes"] > 0
    assert facts["cpu_count"] >= 1 and facts["memory_bytes"] > 0
    assert facts["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert facts["nvlink"] == [] and facts["gpus"] == []  # no GPU on this machine
