"""arms: single, replicated and disaggregated, their instances, layouts and handoff variants."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pdpipeline.profile.strict import Strict

ARMS = ("single", "replicated", "disaggregated")
Arm = Literal["single", "replicated", "disaggregated"]


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
