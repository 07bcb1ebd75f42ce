"""Profiles for the tests: broken ones, each with the field its error must name."""

from __future__ import annotations

import copy
from collections.abc import Callable


def _set(*keys: str | int, value) -> Callable[[dict], None]:
    def mutate(data: dict) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


def _delete(key: str) -> Callable[[dict], None]:
    return lambda data: data.pop(key)


def _add_host(host: dict) -> Callable[[dict], None]:
    return lambda data: data["hosts"].append(host)


def _duplicate_first_host(data: dict) -> None:
    data["hosts"].append(copy.deepcopy(data["hosts"][0]))


def _no_load(data: dict) -> None:
    data["workload"]["concurrency"] = []
    data["workload"].pop("request_rates", None)


def _port_of(field: str, *, to: str, offset: int = 0) -> Callable[[dict], None]:
    """Set the `field` port to the vllm port range `to` starts, plus `offset`."""

    def mutate(data: dict) -> None:
        section, key = field.split(".")
        data[section][key] = data["vllm"][to] + offset

    return mutate


def _unpinned_on_cuda(data: dict) -> None:
    data["hosts"][0]["device_kind"] = "cuda"
    data["arms"]["single"]["instance"]["devices"] = []


def _layouts(*layouts: str, pool: list[dict] | None = None) -> Callable[[dict], None]:
    """The disaggregated arm as `layouts` over the host's devices (or `pool`), replicas sized
    by them."""

    def mutate(data: dict) -> None:
        data["arms"]["replicated"] = {}
        data["arms"]["disaggregated"] = {"layouts": list(layouts)}
        if pool is not None:
            data["arms"]["pool"] = pool

    return mutate


# (mutation of a valid profile, text naming the field, text of the complaint)
MALFORMED = {
    "concurrency-not-int": (
        _set("workload", "concurrency", value=["many"]),
        "workload.concurrency.0:",
        "valid integer",
    ),
    "concurrency-fractional": (
        _set("workload", "concurrency", value=[1.5]),
        "workload.concurrency.0:",
        "fractional",
    ),
    "base-port-not-int": (
        _set("vllm", "base_port", value="http"),
        "vllm.base_port:",
        "valid integer",
    ),
    "devices-not-list": (
        _set("hosts", 0, "devices", value="zero"),
        "hosts.0.devices:",
        "valid list",
    ),
    "device-kind-unknown": (
        _set("hosts", 0, "device_kind", value="tpu"),
        "hosts.0.device_kind:",
        "'cuda' or 'cpu'",
    ),
    "misspelt-vllm-key": (
        _set("vllm", "gpu_memory_utilisation", value=0.5),
        "vllm.gpu_memory_utilisation:",
        "Extra inputs are not permitted",
    ),
    "misspelt-placement-key": (
        _set("arms", "single", "instance", "device", value=[0]),
        "arms.single.instance.device:",
        "Extra inputs are not permitted",
    ),
    "unknown-top-level-key": (
        _set("workloads", value={}),
        "workloads:",
        "Extra inputs are not permitted",
    ),
    "missing-model": (_delete("model"), "model:", "Field required"),
    "placement-host-unknown": (
        _set("arms", "disaggregated", "decode", 0, "host", value="gpu9"),
        "arms.disaggregated",
        "'gpu9' is not in hosts",
    ),
    "proxy-host-unknown": (
        _set("proxy", "host", value="controller"),
        "proxy.host",
        "'controller' is not a host",
    ),
    "duplicate-host-names": (_duplicate_first_host, "host names", "must be unique"),
    "no-load": (_no_load, "workload:", "concurrency levels and/or request_rates"),
    "gpu-memory-utilization-above-1": (
        _set("vllm", "gpu_memory_utilization", value=1.5),
        "vllm.gpu_memory_utilization:",
        "less than or equal to 1",
    ),
    "gpu-memory-utilization-zero": (
        _set("vllm", "gpu_memory_utilization", value=0),
        "vllm.gpu_memory_utilization:",
        "greater than 0",
    ),
    "variant-names-repeat": (
        _set("arms", "disaggregated", "variants", value=[{}, {"kv_connector": "NixlConnector"}]),
        "arms.disaggregated:",
        "names must be unique, got ['pull', 'pull']",
    ),
    "concurrent-handoff-with-pull": (
        _set("arms", "disaggregated", "variants", value=[{"handoff": "concurrent"}]),
        "arms.disaggregated:",
        "pull: the concurrent handoff needs kv_connector NixlPushConnector",
    ),
    "variant-name-with-space": (
        _set("arms", "disaggregated", "variants", value=[{"name": "push fast"}]),
        "arms.disaggregated.variants.0.name:",
        "should match pattern",
    ),
    "leg-timeout-zero": (
        _set("proxy", "leg_timeout_s", value=0),
        "proxy.leg_timeout_s:",
        "greater than 0",
    ),
    "ssh-without-settings": (
        _add_host({"name": "remote", "address": "10.0.0.2", "reach": "ssh"}),
        "hosts.remote",
        "reach ssh needs ssh settings",
    ),
    "concurrency-negative": (
        _set("workload", "concurrency", value=[4, -1]),
        "workload.concurrency.1:",
        "greater than 0",
    ),
    "concurrency-zero": (
        _set("workload", "concurrency", value=[0]),
        "workload.concurrency.0:",
        "greater than 0",
    ),
    "request-rate-negative": (
        _set("workload", "request_rates", value=[-2.5]),
        "workload.request_rates.0:",
        "greater than 0",
    ),
    "request-rate-zero": (
        _set("workload", "request_rates", value=[0]),
        "workload.request_rates.0:",
        "greater than 0",
    ),
    "max-concurrency-zero": (
        _set("workload", "max_concurrency", value=0),
        "workload.max_concurrency:",
        "greater than 0",
    ),
    "slo-ttft-negative": (
        _set("slo", value={"ttft_ms": -500}),
        "slo.ttft_ms:",
        "greater than 0",
    ),
    "slo-tpot-zero": (_set("slo", value={"tpot_ms": 0}), "slo.tpot_ms:", "greater than 0"),
    "single-device-not-on-host": (
        _set("arms", "single", "instance", "devices", value=[7]),
        "arms.single.instance:",
        "device 7 is not one of host local's devices [0, 1]",
    ),
    "replica-device-not-on-host": (
        _set("arms", "replicated", "instances", 1, "devices", value=[7]),
        "arms.replicated.instances.1:",
        "device 7 is not one of host local's devices [0, 1]",
    ),
    "prefill-device-not-on-host": (
        _set("arms", "disaggregated", "prefill", 0, "devices", value=[7]),
        "arms.disaggregated.prefill.0:",
        "device 7 is not one of host local's devices [0, 1]",
    ),
    "decode-device-not-on-host": (
        _set("arms", "disaggregated", "decode", 0, "devices", value=[1, 7]),
        "arms.disaggregated.decode.0:",
        "device 7 is not one of host local's devices [0, 1]",
    ),
    "prompt-longer-than-max-model-len": (
        _set("workload", "points", value=[{"input_len": 1000, "output_len": 64}]),
        "workload.points.0:",
        "input_len 1000 + output_len 64 reaches 1064 tokens, more than vllm.max_model_len 1024",
    ),
    "length-range-longer-than-max-model-len": (
        _set("workload", "points", value=[{"input_len": "256:1000", "output_len": "16:32"}]),
        "workload.points.0:",
        "reaches 1032 tokens, more than vllm.max_model_len 1024",
    ),
    "max-model-len-zero": (
        _set("vllm", "max_model_len", value=0),
        "vllm.max_model_len:",
        "greater than or equal to 1",
    ),
    "proxy-port-is-an-http-port": (
        _port_of("proxy.port", to="base_port"),
        "proxy.port, vllm.base_port:",
        "is both the proxy's port and the HTTP port of single-0, replicated-0, "
        "disaggregated-prefill-0",
    ),
    "proxy-port-is-a-side-channel": (
        _port_of("proxy.port", to="side_channel_base_port", offset=1),
        "proxy.port, vllm.side_channel_base_port:",
        "is both the proxy's port and the NIXL side channel of disaggregated-decode-1",
    ),
    "side-channels-overlap-http-ports": (
        _port_of("vllm.side_channel_base_port", to="base_port", offset=1),
        "vllm.base_port, vllm.side_channel_base_port:",
        "is both the HTTP port of disaggregated-decode-1 and the NIXL side channel of "
        "disaggregated-prefill-0",
    ),
    "side-channels-are-http-ports": (
        _port_of("vllm.side_channel_base_port", to="base_port"),
        "vllm.base_port, vllm.side_channel_base_port:",
        "(likewise port(s) ",
    ),
    "base-port-out-of-range": (
        _set("vllm", "base_port", value=70000),
        "vllm.base_port:",
        "less than or equal to 65535",
    ),
    "proxy-port-zero": (
        _set("proxy", "port", value=0),
        "proxy.port:",
        "greater than or equal to 1",
    ),
    "unknown-kv-connector": (
        _set("arms", "disaggregated", "kv_connector", value="FooConnector"),
        "arms.disaggregated.kv_connector:",
        "'NixlConnector' or 'NixlPushConnector'",
    ),
    "unknown-variant-kv-connector": (
        _set("arms", "disaggregated", "variants", value=[{}, {"kv_connector": "FooConnector"}]),
        "arms.disaggregated.variants.1.kv_connector:",
        "'NixlConnector' or 'NixlPushConnector'",
    ),
    "prefill-and-decode-share-a-device": (
        _set("arms", "disaggregated", "decode", 0, "devices", value=[0]),
        "arms.disaggregated.decode.0:",
        "device 0 of host local is already used by arms.disaggregated.prefill.0 "
        "(arms.disaggregated.allow_shared_devices allows it)",
    ),
    "replicas-share-a-device": (
        _set("arms", "replicated", "instances", 1, "devices", value=[0]),
        "arms.replicated.instances.1:",
        "device 0 of host local is already used by arms.replicated.instances.0",
    ),
    "device-listed-twice": (
        _set("arms", "single", "instance", "devices", value=[1, 1]),
        "arms.single.instance.devices:",
        "device 1 is listed twice",
    ),
    "cuda-placement-without-devices": (
        _unpinned_on_cuda,
        "arms.single.instance:",
        "host local is cuda: list the GPU(s) of this instance in devices",
    ),
    "layout-larger-than-the-pool": (
        _layouts("1P1D", "3P1D"),
        "arms.disaggregated.layouts.1:",
        "3P1D needs 4 device groups, the pool has 2",
    ),
    "layout-not-xpyd": (
        _layouts("2P"),
        "arms.disaggregated.layouts.0:",
        "should match pattern",
    ),
    "pool-uses-a-device-twice": (
        _layouts(
            "1P1D", pool=[{"host": "local", "devices": [0]}, {"host": "local", "devices": [0]}]
        ),
        "arms.pool.1:",
        "device 0 of host local is already in arms.pool.0",
    ),
    "pool-device-the-host-lacks": (
        _layouts(
            "1P1D", pool=[{"host": "local", "devices": [0]}, {"host": "local", "devices": [7]}]
        ),
        "arms.pool.1:",
        "device 7 is not one of host local's devices [0, 1]",
    ),
    "layouts-and-explicit-instances": (
        _set("arms", "disaggregated", "layouts", value=["1P1D"]),
        "arms.disaggregated:",
        "give layouts or prefill and decode instances, not both",
    ),
    "replicas-with-nothing-to-size-them": (
        _set("arms", "replicated", value={}),
        "arms.replicated.instances:",
        "give the replicas, or arms.disaggregated.layouts to size them by",
    ),
    "replicas-given-beside-layouts": (
        _set("arms", "disaggregated", value={"layouts": ["1P1D"]}),
        "arms.replicated.instances:",
        "leave out when arms.disaggregated.layouts sizes the replicas",
    ),
    "engine-variant-names-twice": (
        _set("engine_variants", value=[{"name": "b"}, {"name": "b"}]),
        "engine_variants:",
        "names must be unique",
    ),
    "rate-search-unknown-tier": (
        _set("workload", "rate_search", value={"min_rate": 1, "max_rate": 4, "tiers": ["fast"]}),
        "workload.rate_search.tiers:",
        "'fast' is not an SLO tier (default)",
    ),
    "rate-search-range-inverted": (
        _set("workload", "rate_search", value={"min_rate": 8, "max_rate": 4}),
        "workload.rate_search:",
        "min_rate 8 is above max_rate 4",
    ),
}
