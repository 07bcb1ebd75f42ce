"""The preflight of a launch, after its servers are up and before its first point: what each
server burns while idle, and for the KV servers how the KV cache will move.

For the KV servers: the UCX protocols NIXL chose for remote memory reads and writes (UCX prints
its protocol selection when `UCX_PROTO_INFO=y`, which serving/engine.py sets for them), the
transports and lanes in them, the KV cache layout vLLM logged and whether it keeps a block's
layers together, the block size, the NIXL version, and the descriptors one handoff posted per
KV block (one request through the proxy, read off `vllm:nixl_num_descriptors`).

Idle CPU is read from /proc for the server's process group over a short quiet spell: NIXL's UCX
progress thread polls with a zero timeout (its Python agent sets the delay to 0), so a
NIXL-connected server spins a core while idle. On a CPU host that core is the instance's device.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from pdpipeline.launch.base import Launcher, Service
from pdpipeline.launch.hosts import host_python
from pdpipeline.loadgen.client import Client
from pdpipeline.loadgen.metrics import deltas, scrape, total
from pdpipeline.loadgen.workload import PromptSource, build_requests
from pdpipeline.plan import ArmPlan, Instance
from pdpipeline.profile import Lengths
from pdpipeline.serving.engine import UCX_PROTO_LINE
from pdpipeline.serving.vllm_metrics import CACHE_CONFIG_INFO, NIXL_DESCRIPTORS_SUM
from pdpipeline.warehouse.rows import LaunchServerRow

IDLE_SECONDS = 2.0
# How each connector moves the KV: pull, the decode reads the prefill's blocks; push, the prefill
# writes into the decode's. UCX prints protocols for both and more; the handoff uses these.
KV_DIRECTION = {"NixlConnector": "read", "NixlPushConnector": "write"}

# Runs on the server's host with its Python: the CPU seconds the process group spends over a
# quiet spell, the NIXL version, and the lines of the server's log the preflight reads.
_PROBE = r"""
import json, os, sys, time
from importlib import metadata
pgid, seconds, log = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
tick = os.sysconf("SC_CLK_TCK")
def cpu():
    used = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            used += int(fields[11]) + int(fields[12])
    return used / tick
start = cpu(); time.sleep(seconds); used = cpu() - start
try:
    nixl = metadata.version("nixl")
except metadata.PackageNotFoundError:
    nixl = None
wanted = ("kv cache layout", "] [")
lines = [l.rstrip() for l in open(log, errors="replace") if any(w in l for w in wanted)]
print(json.dumps({"cores": used / seconds, "nixl": nixl, "lines": lines[-4000:]}))
"""

# "<context> intra-node cfg#1": a table's title; self is a worker talking to itself.
_TITLE = re.compile(r"^(?P<context>\S+) (?P<scope>self|intra-node|inter-node) cfg#\d+$")
# "rc_mlx5/mlx5_0:1", "cma/memory", "cuda_ipc/cuda": a transport on a device, one lane.
_LANE = re.compile(r"[a-z][\w]*/[\w:.-]+")
_LAYOUT = re.compile(r"(?:Detected|Using) (?:kv cache layout )?(?P<layout>[A-Z]{3,6})\b")


@dataclass(frozen=True)
class Protocol:
    """One UCX protocol selection table: an operation between two peers and, per message size
    range, the protocol and the transport lanes that carry it."""

    scope: str  # "intra-node" or "inter-node"
    operation: str  # "remote memory read by ucp_get*(multi) into host memory from host"
    ranges: tuple[tuple[str, str, str], ...]  # (size range, description, lanes)

    @property
    def lanes(self) -> list[str]:
        return sorted({lane for _, _, config in self.ranges for lane in _LANE.findall(config)})

    @property
    def emulated(self) -> bool:
        """UCX has no remote memory lane for it and emulates it with messages (e.g. a GPU read
        between two engines on one GPU, over tcp/lo: measured on an H200)."""
        return any(description == "software emulation" for _, description, _ in self.ranges)

    def moves(self, device_kind: str, direction: str | None = None) -> bool:
        """Whether it moves memory of the kind the KV cache lives in, at both ends ("into
        cuda/GPU0 from cuda/dev[2]" on GPU hosts, not "from host memory to cuda/dev[2]", which
        UCX also sets up there; "into host memory from host" on CPU ones), in the handoff's
        `direction` ("read" or "write") when it is known."""
        memory = "cuda" if device_kind == "cuda" else "host"
        both_ends = self.operation.partition(" by ")[2].count(memory) >= 2
        return both_ends and (direction is None or f"remote memory {direction}" in self.operation)

    def as_dict(self, device_kind: str, direction: str | None = None) -> dict:
        return {
            "scope": self.scope,
            "operation": self.operation,
            "ranges": [list(r) for r in self.ranges],
            "lanes": self.lanes,
            "moves_kv": self.moves(device_kind, direction),
            "emulated": self.emulated,
        }


def kv_protocols(lines: Sequence[str]) -> list[Protocol]:
    """The remote memory protocols (the KV reads and writes) in UCX_PROTO_INFO output, once
    each, in the order printed; a worker's tables with itself left out."""
    tables: dict[tuple[str, str], list[str]] = {}
    for line in lines:
        if (m := UCX_PROTO_LINE.match(line.strip())) and m["text"].startswith("|"):
            cells = [c.strip() for c in m["text"].strip("|").split("|")]
            tables.setdefault((m["ts"], m["where"]), []).append(cells)
    found: list[Protocol] = []
    for rows in tables.values():
        if len(rows) < 3 or not (title := _TITLE.match(rows[0][0])):
            continue
        operation = rows[1][0]
        if title["scope"] == "self" or not operation.startswith("remote memory"):
            continue
        ranges = tuple(tuple(r) for r in rows[3:] if len(r) == 3)
        protocol = Protocol(title["scope"], operation, ranges)  # type: ignore[arg-type]
        if protocol not in found:
            found.append(protocol)
    return found


def logged_kv_layout(lines: Sequence[str]) -> str | None:
    """The KV cache layout vLLM logged ("LBHNC", "HND"), the last one named."""
    layouts = [m["layout"] for line in lines if (m := _LAYOUT.search(line))]
    return layouts[-1] if layouts else None


def contiguous_across_layers(layout: str | None) -> bool | None:
    """Whether one KV block holds every layer in one region: its layout puts the block (B)
    outside the layer (L), as BLHNC does; LBHNC and the per-layer NHD/HND do not."""
    if layout is None:
        return None
    if "L" not in layout:
        return False  # one tensor per layer
    return "B" in layout and layout.index("B") < layout.index("L")


def summary(protocols: Sequence[Protocol]) -> str | None:
    """The lanes of the KV reads and writes, for a line: "cma/memory (intra-node get)",
    "tcp/lo (intra-node get, software emulation)"."""
    parts = []
    for p in protocols:
        verb = "get" if "read" in p.operation else "put"
        how = ", software emulation" if p.emulated else ""
        part = f"{', '.join(p.lanes) or '?'} ({p.scope} {verb}{how})"
        if part not in parts:
            parts.append(part)
    return "; ".join(parts) or None


@dataclass(frozen=True)
class Probed:
    idle_cpu_cores: float
    nixl_version: str | None
    log_lines: list[str]


async def probe(launcher: Launcher, instance: Instance, service: Service) -> Probed:
    """The server's idle CPU over `IDLE_SECONDS`, its host's NIXL version and its log lines."""
    out = await launcher.run_command(
        [
            host_python(instance.host),
            "-c",
            _PROBE,
            str(service.pid),
            str(IDLE_SECONDS),
            launcher.log_file(service),
        ]
    )
    found = json.loads(out.strip().splitlines()[-1])
    return Probed(found["cores"], found["nixl"], found["lines"])


async def preflight(
    plan: ArmPlan,
    services: dict[str, tuple[Launcher, Service]],
    client: Client,
    source: PromptSource,
    input_len: Lengths,
    campaign_id: str,
) -> list[LaunchServerRow]:
    """One row per server of the launch. A disaggregated launch first hands one request of
    `input_len` over, so that the KV path is set up and its descriptors counted."""
    kv = [i for i in plan.instances if i.server.role != "standalone"]
    direction = plan.variant and KV_DIRECTION.get(plan.variant.kv_connector)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def scrape_all() -> dict[str, dict]:
            found = await asyncio.gather(
                *(scrape(session, i.server.name, i.server.url) for i in plan.instances)
            )
            return dict(zip((i.server.name for i in plan.instances), found, strict=True))

        before = await scrape_all()
        record = None
        if kv:
            (spec,) = build_requests(source, 1, input_len, Lengths(2, 2), 0, "preflight")
            record = await client.send(spec)
        after = await scrape_all()
    # Quiet: every request has finished; the spell is measured on every server at once.
    probed = await asyncio.gather(
        *(probe(services[i.server.name][0], i, services[i.server.name][1]) for i in plan.instances)
    )
    changes = [
        d for i in kv for d in deltas(i.server.name, before[i.server.name], after[i.server.name])
    ]
    descriptors = total(changes, NIXL_DESCRIPTORS_SUM)
    blocks = record.kv_blocks if record is not None and record.ok else None
    rows = []
    for instance, found in zip(plan.instances, probed, strict=True):
        server = instance.server
        is_kv = server.role != "standalone"
        protocols = kv_protocols(found.log_lines) if is_kv else []
        moving = [p for p in protocols if p.moves(server.device_kind, direction)]
        layout = logged_kv_layout(found.log_lines) if is_kv else None
        rows.append(
            LaunchServerRow(
                campaign_id=campaign_id,
                arm=plan.arm,
                launch=plan.key,
                layout=plan.layout,
                engine_variant=plan.engine and plan.engine.name,
                variant=plan.variant and plan.variant.name,
                server=server.name,
                role=server.role,
                host=instance.host.name,
                device_kind=server.device_kind,
                devices=json.dumps(list(server.devices)),
                idle_cpu_cores=round(found.idle_cpu_cores, 3),
                block_size=block_size(after[server.name]),
                nixl_version=found.nixl_version if is_kv else None,
                kv_layout=layout,
                kv_contiguous_across_layers=contiguous_across_layers(layout),
                preflight_kv_blocks=blocks if is_kv else None,
                descriptors_per_block=(
                    descriptors / blocks if is_kv and blocks and descriptors else None
                ),
                kv_protocols=(
                    json.dumps([p.as_dict(server.device_kind, direction) for p in protocols])
                    if is_kv
                    else None
                ),
                kv_lanes=summary(moving),
                preflight_error=None if record is None or record.ok or not is_kv else record.error,
            )
        )
    return rows


def block_size(samples: dict) -> int | None:
    """The block size the server's `vllm:cache_config_info` reports."""
    for (name, labels), _ in samples.items():
        if name == CACHE_CONFIG_INFO:
            size = json.loads(labels).get("block_size")
            return int(size) if size and size.isdigit() else None
    return None


def describe(rows: Sequence[LaunchServerRow]) -> str:
    """One line for the progress log: the KV path and the idle CPU of the launch."""
    kv = [r for r in rows if r.role != "standalone"]
    idle = ", ".join(f"{r.server} {r.idle_cpu_cores:.2f}" for r in rows)
    if not kv:
        return f"idle CPU cores: {idle}"
    first = kv[0]
    lanes = [part for r in kv for part in (r.kv_lanes or "").split("; ") if part]
    reads = "; ".join(dict.fromkeys(lanes)) or "not reported by UCX"
    per_block = next((r.descriptors_per_block for r in kv if r.descriptors_per_block), None)
    layers = {
        True: "contiguous across layers",
        False: "one region per layer",
        None: "layout not logged",
    }[first.kv_contiguous_across_layers]
    error = next((r.preflight_error for r in kv if r.preflight_error), None)
    return (
        f"KV transport: {reads}; block size {first.block_size}, layout {first.kv_layout or '?'} "
        f"({layers}), "
        + (f"{per_block:.1f} descriptors per block" if per_block else "descriptors not counted")
        + f"; NIXL {first.nixl_version or '?'}; idle CPU cores: {idle}"
        + (f"; the preflight request failed: {error}" if error else "")
    )


def transport_findings(rows: Sequence[LaunchServerRow]) -> list[str]:
    """What is wrong with each launch's KV path, one finding per launch: the preflight handoff
    failed, UCX named no lane for the memory the KV lives in, it emulates the KV reads or writes
    in software (no remote memory lane between the two engines), or the KV moves over TCP alone
    (no RDMA, shared memory, CUDA IPC or NVLink lane: the "pull falling back to TCP" case)."""
    findings = []
    for launch in dict.fromkeys(r.launch for r in rows if r.role != "standalone"):
        kv = [r for r in rows if r.launch == launch and r.role != "standalone"]
        moving = [
            p for r in kv for p in json.loads(r.kv_protocols or "[]") if p.get("moves_kv", True)
        ]
        lanes = sorted({lane for p in moving for lane in p["lanes"]})
        if error := next((r.preflight_error for r in kv if r.preflight_error), None):
            findings.append(f"{launch}: the preflight handoff failed: {error}")
        elif not lanes:
            findings.append(
                f"{launch}: UCX reported no lane for the KV's memory (is UCX_PROTO_INFO off?)"
            )
        elif any(p.get("emulated") for p in moving):
            findings.append(
                f"{launch}: UCX emulates the KV transfer in software over {', '.join(lanes)} "
                "(no remote memory lane between the engines)"
            )
        elif all(lane.startswith("tcp/") for lane in lanes):
            findings.append(f"{launch}: the KV moves over TCP alone ({', '.join(lanes)})")
    return findings
