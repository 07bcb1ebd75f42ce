"""engine_variants: engine settings every arm is measured with in turn."""

from __future__ import annotations

from pydantic import Field

from pdpipeline.profile.strict import Strict


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
