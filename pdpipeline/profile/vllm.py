"""vllm: the arguments shared by every instance of every arm, and the ports they take."""

from __future__ import annotations

from pydantic import Field

from pdpipeline.profile.strict import Port, Strict
from pdpipeline.serving.engine import Role


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
