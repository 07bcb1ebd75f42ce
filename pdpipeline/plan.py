"""Profile -> plan: for each launch of an arm, the exact services (vLLM instances and proxy) on
each host, and the load it measures."""

from __future__ import annotations

import os
import shlex
import uuid
from dataclasses import dataclass
from pathlib import Path

from pdpipeline.launch.base import ServiceSpec
from pdpipeline.launch.hosts import host_python, is_local
from pdpipeline.loadgen.matrix import LoadPlan, load_plan
from pdpipeline.profile import EngineVariant, HandoffVariant, Host, Placement, Profile
from pdpipeline.serving.engine import MODULE_ENTRY_POINT, Role, ServerSpec, command, environment


@dataclass(frozen=True)
class Instance:
    host: Host
    server: ServerSpec
    service: ServiceSpec


@dataclass(frozen=True)
class ArmPlan:
    """One launch of an arm: the services it starts and the load it measures on them."""

    arm: str
    instances: tuple[Instance, ...]
    proxy_host: Host
    proxy: ServiceSpec
    # The points, sizing and SLOs measured on it.
    load: LoadPlan
    # The disaggregated arm's KV handoff; None for single and replicated.
    variant: HandoffVariant | None = None
    # "1P1D", "2R"; None for single.
    layout: str | None = None
    engine: EngineVariant | None = None

    @property
    def key(self) -> str:
        """The arm, layout, engine variant and handoff variant it has: names logs and run ids."""
        parts = (
            self.arm,
            self.layout,
            self.engine and self.engine.name,
            self.variant and self.variant.name,
        )
        return "-".join(p for p in parts if p)

    @property
    def devices(self) -> int:
        """Accelerators (GPUs, or cores on CPU hosts) the arm occupies: the per-GPU divisor."""
        return sum(max(1, len(i.server.devices)) for i in self.instances)

    @property
    def proxy_url(self) -> str:
        return f"http://{self.proxy.host}:{self.proxy.port}"

    def role_urls(self, role: Role) -> list[str]:
        return [i.server.url for i in self.instances if i.server.role == role]


def _engine(host: Host) -> tuple[str, ...]:
    if host.engine:
        return tuple(host.engine)
    return (host_python(host), *MODULE_ENTRY_POINT[1:])


def _model_dir(profile: Profile, host: Host) -> str:
    # Local relative paths are relative to where the campaign runs (the project root).
    return str(Path(profile.model.dir).resolve()) if is_local(host) else profile.model.dir


def server_spec(
    profile: Profile,
    placement: Placement,
    role: Role,
    name: str,
    slot: int,
    token: str,
    variant: HandoffVariant | None = None,
    engine: EngineVariant | None = None,
) -> ServerSpec:
    host = profile.host(placement.host)
    v = profile.vllm
    devices = tuple(placement.devices)
    # Unpinned instances have no device to key on: key on the slot, so two never share a cache.
    cache_key = "-".join(map(str, devices)) or f"slot{slot}"
    cache_root = f"{host.work_dir}/vllm-cache/{host.device_kind}-{cache_key}"
    if is_local(host):
        cache_root = str(Path(cache_root).resolve())
    engine = engine or EngineVariant(name="default")
    return ServerSpec(
        name=name,
        model_dir=_model_dir(profile, host),
        served_model_name=profile.model.served_name,
        port=v.http_port(slot),
        role=role,
        bind_host="0.0.0.0" if not is_local(host) else host.address,
        advertise_host=host.address,
        entry_point=_engine(host),
        device_kind=host.device_kind,
        devices=devices,
        kv_connector=variant.kv_connector if variant else "",
        kv_connector_extra_config=(
            engine.kv_connector_extra_config | variant.kv_connector_extra_config if variant else {}
        ),
        side_channel_port=v.side_channel_port(slot, role),
        side_channel_host=host.kv_address,
        kv_engine_id=token if variant else None,
        dtype=profile.model.dtype,
        kv_cache_dtype=None
        if profile.model.kv_cache_dtype == "auto"
        else profile.model.kv_cache_dtype,
        gpu_memory_utilization=v.gpu_memory_utilization,
        max_model_len=v.max_model_len,
        tensor_parallel_size=v.tensor_parallel_size,
        load_format=profile.model.load_format,
        enforce_eager=v.enforce_eager,
        enable_prefix_caching=v.enable_prefix_caching,
        skip_tokenizer_init=profile.model.skip_tokenizer_init,
        instance_token=token,
        extra_args=(*v.extra_args, *engine.vllm_args, *(variant.vllm_args if variant else ())),
        # Per-device cache: arms reuse each other's compile cache; two instances never share one.
        env={"VLLM_CACHE_ROOT": cache_root}
        | host.env
        | v.env
        | engine.env
        | (variant.env if variant else {}),
    )


def server_service(
    server: ServerSpec, start_timeout_s: float, host_env: dict[str, str] | None = None
) -> ServiceSpec:
    """The launchable service for one vLLM instance; `host_env` is the launching environment
    whose UCX/NIXL/NCCL settings pass through (the controller's own, for local hosts only)."""
    return ServiceSpec(
        name=server.name,
        argv=tuple(command(server)),
        host=server.advertise_host,
        ports=server.ports,
        env=environment(server, host_env),
        identity_path="/v1/models",
        identity_token=server.instance_token,
        start_timeout_s=start_timeout_s,
    )


def proxy_service(
    profile: Profile, servers: list[ServerSpec], token: str, variant: HandoffVariant | None = None
) -> ServiceSpec:
    host = profile.host(profile.proxy.host)
    argv = [host_python(host), "-m", "pdpipeline", "proxy", "--port", str(profile.proxy.port)]
    argv += ["--host", host.address if is_local(host) else "0.0.0.0"]
    argv += ["--leg-timeout-s", f"{profile.proxy.leg_timeout_s:g}"]
    for server in servers:
        argv += [f"--{'backend' if server.role == 'standalone' else server.role}", server.url]
    if variant and variant.handoff == "concurrent":
        argv += ["--handoff", "concurrent", "--kv-tp-size", str(profile.vllm.tensor_parallel_size)]
        for server in servers:
            if server.role == "prefill":
                argv += ["--prefill-peer", server.kv_peer]
    return ServiceSpec(
        name="proxy",
        argv=(*argv, "--instance-token", token),
        host=host.address,
        ports=(profile.proxy.port,),
        identity_token=token,
        start_timeout_s=30.0,
        stop_grace_s=5.0,
    )


def plan_arm(
    profile: Profile,
    arm: str,
    variant: str | None = None,
    layout: str | None = None,
    engine: str | None = None,
) -> ArmPlan:
    """The services one launch of an arm starts, with fresh instance tokens: in `layout`, with
    engine variant `engine` and (disaggregated) handoff variant `variant`, each by default the
    profile's first."""
    token = uuid.uuid4().hex[:12]
    layout = layout or profile.layouts(arm)[0]
    slots = profile.instances(arm, layout)
    if not slots:
        raise ValueError(f"arm {arm!r} is not in profile {profile.name!r}")
    if layout not in profile.layouts(arm):
        raise ValueError(f"layout {layout!r} is not a layout of arm {arm!r}")
    engine_variant = profile.engine_variant(engine) if engine else profile.engines[0]
    handoff = None
    if arm == "disaggregated" and (d := profile.arms.disaggregated):
        handoff = d.variant(variant) if variant else d.handoff_variants[0]
    instances = []
    for slot in slots:
        placement, name = slot.placement, slot.name
        server = server_spec(
            profile,
            placement,
            slot.role,
            name,
            slot.index,
            f"{name}-{token}",
            handoff,
            engine_variant,
        )
        instances.append(
            Instance(
                profile.host(placement.host),
                server,
                server_service(
                    server,
                    profile.vllm.start_timeout_s,
                    dict(os.environ) if is_local(profile.host(placement.host)) else None,
                ),
            )
        )
    proxy = proxy_service(profile, [i.server for i in instances], f"proxy-{token}", handoff)
    return ArmPlan(
        arm,
        tuple(instances),
        profile.host(profile.proxy.host),
        proxy,
        load_plan(profile),
        handoff,
        layout,
        engine_variant,
    )


def plan_arms(profile: Profile, arm: str) -> list[ArmPlan]:
    """Every launch of one arm: per engine variant, per layout, per handoff variant (the
    disaggregated arm's)."""
    d = profile.arms.disaggregated
    handoffs = [v.name for v in d.handoff_variants] if arm == "disaggregated" and d else [None]
    return [
        plan_arm(profile, arm, handoff, layout, engine and engine.name)
        for engine in profile.engines
        for layout in profile.layouts(arm)
        for handoff in handoffs
    ]


def format_plan(profile: Profile) -> str:
    """Per arm and host, the commands and environment a campaign would launch."""
    lines = [f"# profile {profile.name}: model {profile.model.dir} as {profile.model.served_name}"]
    for plan in [p for arm in profile.enabled_arms for p in plan_arms(profile, arm)]:
        lines.append(f"\n## arm {plan.key} ({plan.devices} device(s), proxy {plan.proxy_url})")
        if plan.engine:
            lines.append(f"engine variant {plan.engine.name}: {shlex.join(plan.engine.vllm_args)}")
        if plan.variant:
            v = plan.variant
            lines.append(
                f"handoff variant {v.name}: {v.kv_connector}, {v.handoff} handoff"
                + (
                    f", extra config {v.kv_connector_extra_config}"
                    if v.kv_connector_extra_config
                    else ""
                )
            )
        for service, host in [(i.service, i.host) for i in plan.instances] + [
            (plan.proxy, plan.proxy_host)
        ]:
            lines.append(f"[{host.name} {host.reach} {host.address}] {service.name}")
            for key, value in sorted(service.env.items()):
                lines.append(f"    {key}={shlex.quote(value)}")
            lines.append(f"    {shlex.join(service.argv)}")
    return "\n".join(lines)
