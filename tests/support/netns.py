"""Three hosts on this machine, as the seed's topology: network namespaces joined by veth links.

    controller (this process, root namespace) -- bridge (namespace S) -- host a, host b, host p
    host a -- kv0 (a veth pair that can be shaped) -- host b

a and b stand for the two GPU hosts, p for the CPU-only node that runs the proxy. Each runs its
own sshd on its own address, so whatever the controller starts there over SSH runs in that
namespace. The bridge is 10.213.N.0/24 (N free on this machine: the controller's end is the one
device of the lab in the root namespace, `pdp<id>c`), the KV link 10.214.N.0/24 (it exists only
inside a and b). Namespaces are named `pdp-<pid>-<id>-<s|a|b|p>` after the test process that made
them: everything is removed on exit, and a lab whose process is gone is removed by the next one.
The machine's own interfaces are never touched.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.sshd import Sshd

PREFIX = "pdp"
# A lab's namespaces: pdp-<pid of the test process>-<lab id>-<role>.
_NAMESPACE = re.compile(rf"^{PREFIX}-(\d+)-([0-9a-f]{{4}})-[sabp]$")
BRIDGE_NET = "10.213"
KV_NET = "10.214"
# The interfaces inside a host namespace: to the bridge, and (a and b) the KV link.
NET_DEVICE = "net0"
KV_DEVICE = "kv0"
HOST_NUMBERS = {"a": 11, "b": 12, "p": 13}
# tbf's bucket: a few packets' worth, small next to the transfers measured across the link.
SHAPER_BURST = "32kb"


def netns_unavailable() -> str | None:
    """Why this machine cannot build a lab (not root, no iproute2); None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found (install iproute2)"
    return None


def skip_without_netns() -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)


def ip(command: str, ns: str | None = None) -> str:
    """Run `ip [-n NS] COMMAND` (words without spaces in them) and return its stdout."""
    return _run(["ip", *(["-n", ns] if ns else []), *command.split()])


def tc(command: str, ns: str) -> str:
    return _run(["tc", "-n", ns, *command.split()])


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns list").splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_inside(ns: str) -> None:
    """SIGKILL every process of namespace `ns` (this lab's sshd and what it started)."""
    for pid in ip(f"netns pids {ns}").split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            continue


def _delete_lab(lab_id: str, namespaces: list[str]) -> None:
    # The controller's veth first (its peer in the bridge namespace goes with it), then the
    # namespaces, each with the devices in it.
    if Path(f"/sys/class/net/{PREFIX}{lab_id}c").exists():
        ip(f"link delete {PREFIX}{lab_id}c")
    for ns in namespaces:
        _kill_inside(ns)
        ip(f"netns delete {ns}")


def remove_leftovers() -> list[str]:
    """Remove the labs of test processes that are gone (killed before their teardown)."""
    labs: dict[str, list[str]] = {}
    for ns in _namespaces():
        match = _NAMESPACE.match(ns)
        if match and not _alive(int(match.group(1))):
            labs.setdefault(match.group(2), []).append(ns)
    for lab_id, namespaces in labs.items():
        _delete_lab(lab_id, namespaces)
    return sorted(ns for namespaces in labs.values() for ns in namespaces)


def _free_subnet() -> int:
    """N such that neither 10.213.N.0/24 nor 10.214.N.0/24 is routed on this machine."""
    routes = ip("-4 route show table all")
    numbers = list(range(1, 255))
    random.shuffle(numbers)
    for n in numbers:
        if f"{BRIDGE_NET}.{n}." not in routes and f"{KV_NET}.{n}." not in routes:
            return n
    raise RuntimeError(f"no free {BRIDGE_NET}.N.0/24 on this machine")


@dataclass
class LabHost:
    """One namespace host: its address on the bridge, and on the KV link (a and b)."""

    name: str
    ns: str
    address: str
    kv_address: str | None
    sshd: Sshd | None = None


class Lab:
    """The three namespace hosts, their links and sshds; `remove` undoes all of it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.id = f"{random.randrange(16**4):04x}"
        self.net = _free_subnet()
        self.controller_device = f"{PREFIX}{self.id}c"
        self.controller_address = f"{BRIDGE_NET}.{self.net}.1"
        self.switch = self._ns("s")
        self.hosts = {
            name: LabHost(
                name,
                self._ns(name),
                f"{BRIDGE_NET}.{self.net}.{number}",
                f"{KV_NET}.{self.net}.{number}" if name in ("a", "b") else None,
            )
            for name, number in HOST_NUMBERS.items()
        }
        self._made: list[str] = []
        try:
            self._build()
            for host in self.hosts.values():
                home = directory / f"sshd-{host.name}"
                home.mkdir()
                host.sshd = Sshd(home, host.address, netns=host.ns)
        except BaseException:
            self.remove()
            raise

    def _ns(self, role: str) -> str:
        return f"{PREFIX}-{os.getpid()}-{self.id}-{role}"

    def _add_namespace(self, ns: str) -> None:
        ip(f"netns add {ns}")
        self._made.append(ns)
        ip("link set lo up", ns)

    def _build(self) -> None:
        switch, ctl = self.switch, self.controller_device
        self._add_namespace(switch)
        ip("link add br0 type bridge", switch)
        ip("link set br0 up", switch)
        # The controller's end stays here; its peer becomes a port of the bridge.
        ip(f"link add {ctl} type veth peer name ctl netns {switch}")
        ip("link set ctl master br0 up", switch)
        ip(f"addr add {self.controller_address}/24 dev {ctl}")
        ip(f"link set {ctl} up")
        for host in self.hosts.values():
            self._add_namespace(host.ns)
            port = f"to-{host.name}"
            ip(f"link add {NET_DEVICE} netns {host.ns} type veth peer name {port} netns {switch}")
            ip(f"link set {port} master br0 up", switch)
            ip(f"addr add {host.address}/24 dev {NET_DEVICE}", host.ns)
            ip(f"link set {NET_DEVICE} up", host.ns)
        a, b = self.hosts["a"], self.hosts["b"]
        ip(f"link add {KV_DEVICE} netns {a.ns} type veth peer name {KV_DEVICE} netns {b.ns}")
        for host in (a, b):
            ip(f"addr add {host.kv_address}/24 dev {KV_DEVICE}", host.ns)
            ip(f"link set {KV_DEVICE} up", host.ns)

    # -- the KV link ----------------------------------------------------------------------------

    def shape(self, mbit_per_s: float) -> None:
        """Limit the KV link to `mbit_per_s` each way (tbf on both ends)."""
        for host in (self.hosts["a"], self.hosts["b"]):
            tc(
                f"qdisc replace dev {KV_DEVICE} root tbf rate {mbit_per_s:g}mbit "
                f"burst {SHAPER_BURST} latency 100ms",
                host.ns,
            )

    def unshape(self) -> None:
        for host in (self.hosts["a"], self.hosts["b"]):
            tc(f"qdisc del dev {KV_DEVICE} root", host.ns)

    def tx_bytes(self, host: str, device: str = KV_DEVICE) -> int:
        """Bytes host `host` has sent on `device` so far."""
        link = json.loads(ip(f"-j -s link show {device}", self.hosts[host].ns))
        return int(link[0]["stats64"]["tx"]["bytes"])

    # -- faults -----------------------------------------------------------------------------------

    def set_link(self, host: str, up: bool, device: str = NET_DEVICE) -> None:
        """Take host `host`'s link to the bridge (or `device`) down, or bring it back."""
        ip(f"link set {device} {'up' if up else 'down'}", self.hosts[host].ns)

    def processes(self, host: str) -> list[str]:
        """`pid name` of every process in the host's namespace but its sshd and SSH sessions."""
        found = []
        for pid in ip(f"netns pids {self.hosts[host].ns}").split():
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue  # ended meanwhile
            if not name.startswith("sshd"):
                found.append(f"{pid} {name}")
        return found

    # -- teardown ---------------------------------------------------------------------------------

    def remove(self) -> None:
        for host in self.hosts.values():
            if host.sshd is not None:
                host.sshd.stop()
        _delete_lab(self.id, [ns for ns in self._made if ns in _namespaces()])


# -- the profile ----------------------------------------------------------------------------------

TWO_NODE_EXAMPLE = Path(__file__).resolve().parents[2] / "profiles" / "two-node-example.yaml"
# The example's hosts, played by the lab's: two GPU hosts, and its controller, which runs the
# proxy, by the proxy node (named so: the controller here is the test process).
PLAYED_BY = {"gpu1": "a", "gpu2": "b", "controller": "p"}


def lab_profile_data(lab: Lab, model_dir: Path, work_dir: Path, **workload) -> dict:
    """profiles/two-node-example.yaml on the lab: its hosts (each reached over SSH, the KV over
    the kv0 link by TCP), arms and ports, with the tiny model, one core per host and a small
    workload in place of the GPUs and the Llama campaign."""
    data = yaml.safe_load(TWO_NODE_EXAMPLE.read_text())
    hosts = []
    for example in data["hosts"]:
        host = lab.hosts[PLAYED_BY[example["name"]]]
        entry = {
            # The example's proxy runs on its controller; here on a node of its own.
            "name": "proxy-node" if host.name == "p" else example["name"],
            "address": host.address,
            "reach": "ssh",
            "ssh": host.sshd.settings(),
            "python": sys.executable,
            "device_kind": "cpu",
            "work_dir": str(work_dir),
        }
        if host.kv_address:
            # One core each, so the two "GPU hosts" never share a core on this machine.
            entry |= {"kv_address": host.kv_address, "devices": [0 if host.name == "a" else 1]}
            # UCX over TCP on the KV link only: the hosts share a kernel, and UCX's shared
            # memory transports would otherwise move the KV without crossing any link.
            entry["env"] = {
                "UCX_TLS": "tcp",
                "UCX_NET_DEVICES": KV_DEVICE,
                "VLLM_CPU_KVCACHE_SPACE": "1",
                # A host keeps vLLM's cache (what it learnt of the model's architecture) across
                # campaigns, as a real host's disk does, whatever work dir a test gives it.
                "VLLM_CACHE_ROOT": str(lab.directory / f"vllm-cache-{host.name}"),
            }
        hosts.append(entry)
    data["hosts"] = hosts
    data["proxy"]["host"] = "proxy-node"
    data["name"] = "netns-two-node"
    data["model"] = {"dir": str(model_dir), "served_name": "tiny", "load_format": "dummy"}
    data["vllm"] = {
        "base_port": data["vllm"]["base_port"],
        "side_channel_base_port": data["vllm"]["side_channel_base_port"],
        "max_model_len": 1024,
        "enforce_eager": True,
        "start_timeout_s": 300,
    }
    for arm in ("single", "replicated", "disaggregated"):
        for placement in _placements(data["arms"][arm]):
            placement["devices"] = [0 if placement["host"] == "gpu1" else 1]
    # One handoff (pull) in this lab; the example's RDMA and push variants need what it lacks.
    data["arms"]["disaggregated"].pop("variants")
    data["workload"] = {
        "points": [{"input_len": 512, "output_len": 16}],
        "concurrency": [1],
        "requests_per_point": 6,
        "min_window_s": 0,
        "min_window_requests": 1,
        "warmup_requests": 2,
        "repeats": 1,
    } | workload
    return data


def _placements(arm: dict) -> list[dict]:
    if "instance" in arm:
        return [arm["instance"]]
    return [p for key in ("instances", "prefill", "decode") for p in arm.get(key, [])]
