"""hosts: where instances and the proxy run, and how the controller reaches each host."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pdpipeline.profile.strict import Strict


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
