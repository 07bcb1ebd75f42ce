"""The profile as a whole: its sections, the instances each arm launches, and the checks that
span sections (hosts named, devices and ports not taken twice, lengths that fit)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from pydantic import Field, field_validator, model_validator

from pdpipeline.profile.arms import ARMS, Arm, Arms, Placement, layout_counts, replicas_layout
from pdpipeline.profile.engines import EngineVariant
from pdpipeline.profile.hosts import Host
from pdpipeline.profile.model import Model
from pdpipeline.profile.proxy import ProxySettings
from pdpipeline.profile.slo import DEFAULT_TIER, RUN_SLO, SloTier, TierName
from pdpipeline.profile.strict import Strict
from pdpipeline.profile.vllm import VllmSettings
from pdpipeline.profile.workload import Workload
from pdpipeline.serving.engine import Role

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
    # The limits of each run's own `goodput` figure; without `slo_tiers`, the one tier.
    slo: SloTier = RUN_SLO
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
        return {DEFAULT_TIER: self.slo}

    @field_validator("slo", mode="before")
    @classmethod
    def _run_slo_defaults(cls, value: object) -> object:
        # A limit `slo` leaves out is RUN_SLO's, not "no limit".
        return RUN_SLO.model_dump() | value if isinstance(value, dict) else value

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
            prompt, output = point.input_len.hi, point.output_len.hi
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
