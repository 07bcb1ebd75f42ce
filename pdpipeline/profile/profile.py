"""The campaign profile: hosts, model, arms and their topology, workload matrix, SLOs."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pdpipeline.errors import ProfileError
from pdpipeline.loadgen.workload import Lengths
from pdpipeline.serving.engine import Role

ARMS = ("single", "replicated", "disaggregated")
Arm = Literal["single", "replicated", "disaggregated"]
Port = Annotated[int, Field(ge=1, le=65535)]


class Strict(BaseModel):
    # A misspelt key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SshSettings(Strict):
    user: str | None = None
    port: int = 22
    key_file: str | None = None
    known_hosts: str | None = "~/.ssh/known_hosts"
    # Named opt-out for throwaway labs: accept any host key.
    insecure_skip_host_key_check: bool = False
    jump_host: str | None = None
    connect_timeout_s: float = 10.0
    # The controller reaches HTTP ports through forwarded ports instead of directly.
    forward_ports: bool = False


class Host(Strict):
    name: str
    address: str = Field(description="address the controller and the other hosts use")
    # NIXL's handshake side channel: the address the other hosts reach over the KV network
    # (e.g. the RoCE interface); defaults to `address`.
    kv_address: str | None = None
    reach: Literal["local", "ssh"] = "local"
    ssh: SshSettings | None = None
    # Command that starts vLLM's OpenAI server; None: this interpreter's vllm module (local).
    engine: list[str] | None = None
    python: str | None = Field(None, description="interpreter for the proxy on this host")
    device_kind: Literal["cuda", "cpu"] = "cpu"
    devices: list[int] = Field(default_factory=list, description="GPU ids or CPU cores")
    env: dict[str, str] = Field(default_factory=dict)
    work_dir: str = ".runs"


class Model(Strict):
    dir: str
    served_name: str
    dtype: str | None = None
    kv_cache_dtype: str = "auto"
    load_format: str | None = None
    skip_tokenizer_init: bool = False
    # Where the controller finds the tokenizer (or config.json for token-id prompts) to build
    # requests; defaults to `dir`, which then must exist on the controller too.
    tokenizer: str | None = None

    @property
    def tokenizer_dir(self) -> str:
        return self.tokenizer or self.dir


class Placement(Strict):
    """One vLLM instance of an arm: which host and which of its devices."""

    host: str
    devices: list[int] = Field(default_factory=list)

    @field_validator("devices")
    @classmethod
    def _distinct(cls, devices: list[int]) -> list[int]:
        repeated = sorted({d for d in devices if devices.count(d) > 1})
        if repeated:
            raise ValueError(f"device {repeated[0]} is listed twice")
        return devices


class SingleArm(Strict):
    instance: Placement


class ReplicatedArm(Strict):
    # None: sized per layout of arms.disaggregated.layouts (one replica per device group, as
    # many as each layout has instances), so every layout meets replicas on as many devices.
    instances: list[Placement] | None = Field(None, min_length=1)


PUSH_CONNECTOR = "NixlPushConnector"
# The connectors our proxy knows how to hand off between, and their default variant names.
KvConnector = Literal["NixlConnector", "NixlPushConnector"]
CONNECTOR_NAMES: dict[str, str] = {"NixlConnector": "pull", PUSH_CONNECTOR: "push"}
Handoff = Literal["sequential", "concurrent"]


class HandoffVariant(Strict):
    """One way of moving the KV cache from prefill to decode, measured as its own series.

    Unset fields take the arm's value; `kv_connector_extra_config` and `env` are merged over it.
    """

    name: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kv_connector: KvConnector | None = None
    kv_connector_extra_config: dict = Field(default_factory=dict)
    # sequential: prefill, then decode with the params it returned (pull and push);
    # concurrent: both legs at once, so decode registers its blocks during the prefill (push).
    handoff: Handoff | None = None
    # Transfer settings for this variant's servers (UCX_TLS, UCX_NET_DEVICES, NIXL_...).
    env: dict[str, str] = Field(default_factory=dict)
    # vLLM arguments after vllm.extra_args, e.g. a larger --block-size (fewer KV descriptors).
    vllm_args: list[str] = Field(default_factory=list)


LAYOUT_PATTERN = r"^([1-9][0-9]*)P([1-9][0-9]*)D$"


def layout_counts(layout: str) -> tuple[int, int]:
    """The prefill and decode instance counts of an xPyD layout name."""
    prefill, decode = re.fullmatch(LAYOUT_PATTERN, layout).groups()
    return int(prefill), int(decode)


def replicas_layout(count: int) -> str:
    """The layout name of `count` replicas."""
    return f"{count}R"


class DisaggregatedArm(Strict):
    # One explicit topology: the instances of each role ...
    prefill: list[Placement] = Field(default_factory=list)
    decode: list[Placement] = Field(default_factory=list)
    # ... or xPyD layouts ("1P1D", "3P1D"), each taking its instances from arms.pool in order
    # (prefill first), each measured in turn against replicas on as many device groups.
    layouts: list[Annotated[str, Field(pattern=LAYOUT_PATTERN)]] = Field(default_factory=list)
    kv_connector: KvConnector = "NixlConnector"
    kv_connector_extra_config: dict = Field(default_factory=dict)
    handoff: Handoff | None = None
    env: dict[str, str] = Field(default_factory=dict)
    # Several variants run one after another in the same campaign, against the same baselines;
    # none: one variant made of the fields above.
    variants: list[HandoffVariant] = Field(default_factory=list)
    # Named opt-in: this arm's instances may share a device (legitimate on a big GPU, with
    # gpu_memory_utilization split between them); per-device figures then count a shared
    # device once per instance on it.
    allow_shared_devices: bool = False

    @model_validator(mode="after")
    def _one_topology(self) -> DisaggregatedArm:
        if self.layouts and (self.prefill or self.decode):
            raise ValueError("give layouts or prefill and decode instances, not both")
        if not self.layouts and not (self.prefill and self.decode):
            raise ValueError("give prefill and decode instances, or layouts (e.g. [1P1D, 3P1D])")
        if len(set(self.layouts)) != len(self.layouts):
            raise ValueError(f"layouts: each layout once, got {self.layouts}")
        return self

    @model_validator(mode="after")
    def _variants_resolve(self) -> DisaggregatedArm:
        names = [v.name for v in self.handoff_variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variants: names must be unique, got {names}")
        for v in self.handoff_variants:
            if v.handoff == "concurrent" and v.kv_connector != PUSH_CONNECTOR:
                raise ValueError(
                    f"variants: {v.name}: the concurrent handoff needs kv_connector "
                    f"{PUSH_CONNECTOR} (a pull decode needs the prefill's block ids first)"
                )
        return self

    @property
    def handoff_variants(self) -> list[HandoffVariant]:
        """Every variant with all of its fields set."""
        resolved = []
        for v in self.variants or [HandoffVariant()]:
            connector = v.kv_connector or self.kv_connector
            resolved.append(
                HandoffVariant(
                    name=v.name or CONNECTOR_NAMES[connector],
                    kv_connector=connector,
                    kv_connector_extra_config=self.kv_connector_extra_config
                    | v.kv_connector_extra_config,
                    # Push defaults to the concurrent handoff its protocol is built for.
                    handoff=v.handoff
                    or self.handoff
                    or ("concurrent" if connector == PUSH_CONNECTOR else "sequential"),
                    env=self.env | v.env,
                    vllm_args=v.vllm_args,
                )
            )
        return resolved

    def variant(self, name: str) -> HandoffVariant:
        for v in self.handoff_variants:
            if v.name == name:
                return v
        known = ", ".join(v.name for v in self.handoff_variants)
        raise ValueError(f"variant {name!r} is not in arms.disaggregated ({known})")


class Arms(Strict):
    single: SingleArm | None = None
    replicated: ReplicatedArm | None = None
    disaggregated: DisaggregatedArm | None = None
    # The device groups that layouts (and the replicas sized by them) take instances from, in
    # order; none: every host's declared devices, tensor_parallel_size of them per instance.
    pool: list[Placement] = Field(default_factory=list)


class EngineVariant(Strict):
    """Engine settings measured as their own series in EVERY arm (a KV block size, a batched
    token budget), so a gain of one arm is never a handicap of the other's settings."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    # vLLM arguments after vllm.extra_args and before a handoff variant's, e.g. --block-size 128.
    vllm_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    # Connector settings that change the KV layout for the transfer (e.g.
    # enable_cross_layers_blocks); the disaggregated arm only, under each handoff variant's own.
    kv_connector_extra_config: dict = Field(default_factory=dict)


class ProxySettings(Strict):
    host: str
    port: Port = 8200
    # Each leg (prefill; decode to its last byte) ends with a 504 naming the instance after this.
    leg_timeout_s: float = Field(300.0, gt=0)


class VllmSettings(Strict):
    """Arguments shared by every instance of every arm."""

    base_port: Port = 8100
    side_channel_base_port: Port = 5600
    max_model_len: int | None = Field(None, ge=1)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    tensor_parallel_size: int = Field(1, ge=1)
    enforce_eager: bool = False
    enable_prefix_caching: bool = False
    extra_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    start_timeout_s: float = Field(600, gt=0)

    # Arms run one at a time, so each numbers its instances from 0 and they reuse these ports.
    def http_port(self, index: int) -> int:
        """The HTTP port of an arm's instance `index`."""
        return self.base_port + index

    def side_channel_port(self, index: int, role: Role) -> int | None:
        """The NIXL side-channel port of an arm's instance `index`; None when standalone."""
        return None if role == "standalone" else self.side_channel_base_port + index


class WorkloadPoint(Strict):
    input_len: str = Field(description="N or LO:HI")
    output_len: str

    @model_validator(mode="before")
    @classmethod
    def _lengths_as_text(cls, data: dict) -> dict:
        if isinstance(data, dict):
            return {k: str(v) if isinstance(v, int) else v for k, v in data.items()}
        return data

    @field_validator("input_len", "output_len")
    @classmethod
    def _parses(cls, value: str) -> str:
        try:
            Lengths.parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not N or LO:HI with 1 <= LO <= HI") from None
        return value


class RateSearch(Strict):
    """Searches, per series, shape and SLO tier, the highest open-loop request rate that meets
    the tier: a geometric ladder from min_rate up to the first failing rate, then bisection
    between the last pass and the first fail, within `steps` measured rates per tier (rates
    already measured for another tier are reused)."""

    tiers: list[str] | None = Field(None, min_length=1, description="none: every tier")
    min_rate: float = Field(gt=0)
    max_rate: float = Field(gt=0)
    steps: int = Field(6, ge=1)
    growth: float = Field(2.0, gt=1)
    # The search stops once the last pass and the first fail are within this share.
    tolerance: float = Field(0.1, gt=0)

    @model_validator(mode="after")
    def _range(self) -> RateSearch:
        if self.min_rate > self.max_rate:
            raise ValueError(f"min_rate {self.min_rate:g} is above max_rate {self.max_rate:g}")
        return self


class Workload(Strict):
    api: Literal["completions", "chat"] = "completions"
    points: list[WorkloadPoint] = Field(min_length=1)
    concurrency: list[Annotated[int, Field(gt=0)]] = Field(default_factory=list)
    request_rates: list[Annotated[float, Field(gt=0)]] = Field(default_factory=list)
    burstiness: float = Field(1.0, gt=0)
    max_concurrency: int | None = Field(None, gt=0)
    # A point runs until its steady window (loadgen/window.py) has lasted `min_window_s` with
    # `min_window_requests` started inside it, and at least `requests_per_point` were sent; a
    # point reaching `max_requests_per_point` first stops there, its run flagged window_short.
    min_window_s: float = Field(20.0, ge=0)
    min_window_requests: int = Field(32, ge=1)
    max_requests_per_point: int = Field(2000, ge=1)
    requests_per_point: int = Field(1, ge=1)
    # Open loop: the share of the arrival period before the window starts.
    open_loop_warmup_share: float = Field(0.1, ge=0, lt=1)
    # After the matrix, per shape and SLO tier: the highest request rate meeting the tier.
    rate_search: RateSearch | None = None
    warmup_requests: int = Field(4, ge=0)
    repeats: int = Field(1, ge=1)
    seed: int = 0
    # A request not finished within this fails (and makes its run invalid) rather than hang.
    request_timeout_s: float = Field(600.0, gt=0)

    @model_validator(mode="after")
    def _some_load(self) -> Workload:
        if not self.concurrency and not self.request_rates:
            raise ValueError("give concurrency levels and/or request_rates")
        return self

    @model_validator(mode="after")
    def _room_for_a_window(self) -> Workload:
        bound = self.max_requests_per_point
        if bound < self.requests_per_point:
            raise ValueError(
                f"max_requests_per_point {bound} is below requests_per_point "
                f"{self.requests_per_point}"
            )
        if self.concurrency and bound <= max(self.concurrency):
            # A closed loop's window opens at its c-th completion; no request would start in it.
            raise ValueError(
                f"max_requests_per_point {bound} leaves no steady window at concurrency "
                f"{max(self.concurrency)}: give more"
            )
        return self


class Slo(Strict):
    """The limits of each run's own `goodput` figure; without `slo_tiers`, the one tier."""

    ttft_ms: float = Field(500.0, gt=0)
    tpot_ms: float = Field(50.0, gt=0)


class SloTier(Strict):
    """A service level the report judges the setups at (DistServe's goodput): a request meets it
    when it meets every limit given, and a load meets it when `attainment` of its requests do."""

    ttft_ms: float | None = Field(None, gt=0)
    tpot_ms: float | None = Field(None, gt=0)
    attainment: float = Field(0.9, gt=0, le=1)

    @model_validator(mode="after")
    def _some_limit(self) -> SloTier:
        if self.ttft_ms is None and self.tpot_ms is None:
            raise ValueError(
                "give ttft_ms and/or tpot_ms: every request meets a tier with no limit"
            )
        return self


DEFAULT_TIER = "default"
TierName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]


# The fields that put a service on a port, and what the port is to that service.
_PORT_FIELDS = {
    "proxy.port": "the proxy's port",
    "vllm.base_port": "the HTTP port of ",
    "vllm.side_channel_base_port": "the NIXL side channel of ",
}


@dataclass(frozen=True)
class InstanceSlot:
    """One instance of an arm, in launch order: `index` numbers its name and its ports."""

    arm: Arm
    role: Role
    index: int
    placement: Placement
    field: str  # where the profile declares it, e.g. arms.disaggregated.decode.0

    @property
    def name(self) -> str:
        if self.role == "standalone":
            return f"{self.arm}-{self.index}"
        return f"{self.arm}-{self.role}-{self.index}"


class Profile(Strict):
    name: str
    description: str = ""
    hosts: list[Host] = Field(min_length=1)
    model: Model
    proxy: ProxySettings
    vllm: VllmSettings = VllmSettings()
    arms: Arms
    workload: Workload
    slo: Slo = Slo()
    # Named service levels the report's verdict is given at; none: `slo` is the one tier.
    slo_tiers: dict[TierName, SloTier] | None = Field(None, min_length=1)
    # Engine settings every arm is measured with in turn; none: vLLM's defaults (and `vllm`).
    engine_variants: list[EngineVariant] = Field(default_factory=list)

    @property
    def engines(self) -> list[EngineVariant | None]:
        """The engine variants each arm is launched with; [None] without engine_variants."""
        return list(self.engine_variants) or [None]

    def engine_variant(self, name: str) -> EngineVariant:
        for e in self.engine_variants:
            if e.name == name:
                return e
        known = ", ".join(e.name for e in self.engine_variants) or "none"
        raise ValueError(f"engine variant {name!r} is not in engine_variants ({known})")

    @property
    def tiers(self) -> dict[str, SloTier]:
        """The SLO tiers the report judges at: `slo_tiers`, else one made of `slo`."""
        if self.slo_tiers:
            return dict(self.slo_tiers)
        return {DEFAULT_TIER: SloTier(ttft_ms=self.slo.ttft_ms, tpot_ms=self.slo.tpot_ms)}

    @model_validator(mode="after")
    def _references(self) -> Profile:
        names = [h.name for h in self.hosts]
        problems = []
        if len(set(names)) != len(names):
            problems.append(f"hosts: host names must be unique, got {names}")
        if self.proxy.host not in names:
            problems.append(f"proxy.host: {self.proxy.host!r} is not a host ({', '.join(names)})")
        for slot in self.slots():
            if slot.placement.host not in names:
                problems.append(f"{slot.field}: host {slot.placement.host!r} is not in hosts")
        for host in self.hosts:
            if host.reach == "ssh" and host.ssh is None:
                problems.append(f"hosts.{host.name}: reach ssh needs ssh settings")
        if not self.enabled_arms:
            problems.append("arms: enable at least one of single, replicated, disaggregated")
        for i, placement in enumerate(self.arms.pool):
            if placement.host not in names:
                problems.append(f"arms.pool.{i}: host {placement.host!r} is not in hosts")
        problems += self._topology_problems()
        if not problems:  # the checks below look hosts up by name
            problems += self._device_problems() + self._port_problems() + self._length_problems()
        self._raise(problems)
        return self

    @staticmethod
    def _raise(problems: list[str]) -> None:
        if problems:
            # A pool's device group serves in several layouts: say each problem once.
            raise ValueError("\n".join(dict.fromkeys(problems)))

    @model_validator(mode="after")
    def _choices(self) -> Profile:
        problems = []
        names = [e.name for e in self.engine_variants]
        if len(set(names)) != len(names):
            problems.append(f"engine_variants: names must be unique, got {names}")
        search = self.workload.rate_search
        for tier in (search.tiers or []) if search else []:
            if tier not in self.tiers:
                problems.append(
                    f"workload.rate_search.tiers: {tier!r} is not an SLO tier "
                    f"({', '.join(self.tiers)})"
                )
        self._raise(problems)
        return self

    def _topology_problems(self) -> list[str]:
        """Layouts the pool cannot hold, a pool using a device twice, replicas with no size."""
        problems = []
        d, r = self.arms.disaggregated, self.arms.replicated
        layouts = d.layouts if d else []
        if r is not None and r.instances is None and not layouts:
            problems.append(
                "arms.replicated.instances: give the replicas, or arms.disaggregated.layouts "
                "to size them by"
            )
        if r is not None and r.instances is not None and layouts:
            problems.append(
                "arms.replicated.instances: leave out when arms.disaggregated.layouts sizes the "
                "replicas (as many per layout as it has instances)"
            )
        if not layouts:
            return problems
        pool = self.pool
        seen: dict[tuple[str, int], int] = {}
        for k, placement in enumerate(pool):
            for device in placement.devices:
                if (placement.host, device) in seen:
                    problems.append(
                        f"arms.pool.{k}: device {device} of host {placement.host} is already in "
                        f"arms.pool.{seen[placement.host, device]}"
                    )
                seen.setdefault((placement.host, device), k)
        for i, layout in enumerate(layouts):
            needed = sum(layout_counts(layout))
            if needed > len(pool):
                problems.append(
                    f"arms.disaggregated.layouts.{i}: {layout} needs {needed} device groups, "
                    f"the pool has {len(pool)} (arms.pool, or the hosts' declared devices "
                    f"{self.vllm.tensor_parallel_size} per instance)"
                )
        return problems

    @property
    def pool(self) -> list[Placement]:
        """The device groups layouts take their instances from, in order."""
        if self.arms.pool:
            return list(self.arms.pool)
        size = self.vllm.tensor_parallel_size
        return [
            Placement(host=h.name, devices=h.devices[i : i + size])
            for h in self.hosts
            for i in range(0, len(h.devices) - size + 1, size)
        ]

    def layouts(self, arm: str) -> list[str | None]:
        """The layouts an arm is launched in, in order: the replicated arm one per instance
        count of the disaggregated layouts (or its own instances); single has one, None."""
        d, r = self.arms.disaggregated, self.arms.replicated
        if arm == "disaggregated" and d:
            return list(d.layouts) or [f"{len(d.prefill)}P{len(d.decode)}D"]
        if arm == "replicated" and r:
            if r.instances is not None:
                return [replicas_layout(len(r.instances))]
            sizes = sorted({sum(layout_counts(x)) for x in d.layouts}) if d else []
            return [replicas_layout(n) for n in sizes]
        return [None]

    def _device_problems(self) -> list[str]:
        """Placements on devices their host lacks, or that another instance of the arm uses."""
        problems = []
        for arm, layout in self._launches():
            users: dict[tuple[str, int], list[str]] = defaultdict(list)
            for slot in self.instances(arm, layout):
                host = self.host(slot.placement.host)
                devices = slot.placement.devices
                if host.device_kind == "cuda" and not devices:
                    # Unpinned, it would see every GPU and load onto the first, whoever is there.
                    problems.append(
                        f"{slot.field}: host {host.name} is cuda: list the GPU(s) of this "
                        "instance in devices"
                    )
                # An empty host list (the default) is "not declared", not "no devices": such a
                # host's placements are checked by hardware_check against what its probe finds.
                missing = [d for d in devices if d not in host.devices] if host.devices else []
                if missing:
                    problems.append(
                        f"{slot.field}: device {missing[0]} is not one of host {host.name}'s "
                        f"devices {host.devices}"
                    )
                for device in devices:
                    users[host.name, device].append(slot.field)
            d = self.arms.disaggregated
            if arm == "disaggregated" and d is not None and d.allow_shared_devices:
                continue
            for (host_name, device), fields in users.items():
                if len(fields) > 1:
                    opt_in = (
                        " (arms.disaggregated.allow_shared_devices allows it)"
                        if arm == "disaggregated"
                        else ""
                    )
                    problems.append(
                        f"{', '.join(fields[1:])}: device {device} of host {host_name} is "
                        f"already used by {fields[0]}{opt_in}"
                    )
        return problems

    def _port_problems(self) -> list[str]:
        """Ports two services would both bind on one host: within an arm, or beside the proxy
        (which runs with every arm); arms run one at a time, so they reuse each other's."""
        # (host, port) -> the field that puts a service there -> the instances it puts there
        clashes: dict[tuple[str, int], dict[str, list[str]]] = defaultdict(dict)
        for arm, layout in self._launches():
            binds: dict[tuple[str, int], dict[str, list[str]]] = defaultdict(dict)
            binds[self.proxy.host, self.proxy.port]["proxy.port"] = []
            for slot in self.instances(arm, layout):
                at = slot.placement.host, self.vllm.http_port(slot.index)
                binds[at].setdefault("vllm.base_port", []).append(slot.name)
                side = self.vllm.side_channel_port(slot.index, slot.role)
                if side is not None:
                    at = slot.placement.host, side
                    binds[at].setdefault("vllm.side_channel_base_port", []).append(slot.name)
            for at, users in binds.items():
                if sum(max(1, len(names)) for names in users.values()) > 1:
                    for field, names in users.items():
                        clashes[at].setdefault(field, []).extend(names)
        # One line per host and pair of fields, however many ports the two ranges share.
        ports: dict[tuple[str, tuple[str, ...]], list[int]] = defaultdict(list)
        for (host_name, port), users in clashes.items():
            ports[host_name, tuple(f for f in _PORT_FIELDS if f in users)].append(port)
        problems = []
        for (host_name, fields), (port, *more) in ports.items():
            users = clashes[host_name, port]
            both = " and ".join(
                _PORT_FIELDS[f] + ", ".join(dict.fromkeys(users[f])) for f in fields
            )
            likewise = f" (likewise port(s) {', '.join(map(str, more))})" if more else ""
            problems.append(
                f"{', '.join(fields)}: port {port} on host {host_name} is both {both}{likewise}"
            )
        return problems

    def _length_problems(self) -> list[str]:
        """Workload points whose longest request does not fit in vllm.max_model_len."""
        limit = self.vllm.max_model_len
        if limit is None:  # the model's own limit: only its servers know it
            return []
        problems = []
        for i, point in enumerate(self.workload.points):
            prompt, output = Lengths.parse(point.input_len).hi, Lengths.parse(point.output_len).hi
            if prompt + output > limit:
                problems.append(
                    f"workload.points.{i}: input_len {point.input_len} + output_len "
                    f"{point.output_len} reaches {prompt + output} tokens, more than "
                    f"vllm.max_model_len {limit}"
                )
        return problems

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def instances(self, arm: str, layout: str | None = None) -> list[InstanceSlot]:
        """The arm's instances in launch order, in `layout` (default: its first); none when
        the arm is not enabled."""
        roles: list[tuple[Role, str, Placement]] = []
        d, r = self.arms.disaggregated, self.arms.replicated
        if layout is None:
            layout = next(iter(self.layouts(arm)), None)
        pooled = [(f"arms.pool.{k}", p) for k, p in enumerate(self.pool)]
        if arm == "single" and self.arms.single:
            roles = [("standalone", "arms.single.instance", self.arms.single.instance)]
        elif arm == "replicated" and r and r.instances is not None:
            roles = [
                ("standalone", f"arms.replicated.instances.{i}", p)
                for i, p in enumerate(r.instances)
            ]
        elif arm == "replicated" and r and layout:
            roles = [("standalone", *slot) for slot in pooled[: int(layout.removesuffix("R"))]]
        elif arm == "disaggregated" and d and d.layouts:
            prefill, decode = layout_counts(layout)
            roles = [("prefill", *slot) for slot in pooled[:prefill]]
            roles += [("decode", *slot) for slot in pooled[prefill : prefill + decode]]
        elif arm == "disaggregated" and d:
            roles = [
                ("prefill", f"arms.disaggregated.prefill.{i}", p) for i, p in enumerate(d.prefill)
            ]
            roles += [
                ("decode", f"arms.disaggregated.decode.{i}", p) for i, p in enumerate(d.decode)
            ]
        return [
            InstanceSlot(arm, role, index, placement, field)
            for index, (role, field, placement) in enumerate(roles)
        ]

    def _launches(self) -> list[tuple[str, str | None]]:
        """Each (arm, layout) launched: what runs on the devices and ports at one time."""
        return [(arm, layout) for arm in self.enabled_arms for layout in self.layouts(arm)]

    def slots(self) -> list[InstanceSlot]:
        """Every enabled arm's instances, in every layout."""
        return [slot for arm, layout in self._launches() for slot in self.instances(arm, layout)]

    def placements(self) -> list[tuple[str, Placement]]:
        return [(slot.arm, slot.placement) for slot in self.slots()]

    @property
    def enabled_arms(self) -> list[str]:
        return [arm for arm in ARMS if getattr(self.arms, arm) is not None]


class LoadedProfile(BaseModel):
    """A validated profile with the text it came from (stored with every campaign)."""

    profile: Profile
    path: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def profile_from_text(text: str) -> Profile:
    """The profile a campaign stored as text (pydantic.ValidationError if no longer valid)."""
    return Profile.model_validate(yaml.safe_load(text))


def load_profile(path: str | Path) -> LoadedProfile:
    """Read and validate a profile; every bad field is one line naming it."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ProfileError(f"profile {path}: cannot read ({e.strerror})") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ProfileError(f"profile {path}: not valid YAML ({str(e).splitlines()[0]})") from e
    if not isinstance(data, dict):
        raise ProfileError(f"profile {path}: expected a mapping at the top level")
    try:
        profile = Profile.model_validate(data)
    except pydantic.ValidationError as e:
        raise ProfileError(_validation_lines(path, e)) from None
    return LoadedProfile(profile=profile, path=str(path), text=text)


def _validation_lines(path: Path, error: pydantic.ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        # Cross-field problems (empty loc) already start with the field they name.
        prefix = f"profile {path}: {where}: " if where else f"profile {path}: "
        lines += [prefix + line for line in message.splitlines()]
    return "\n".join(lines)
