"""One row class per warehouse table: its fields are the table's columns, in schema.sql's order.

Rows are built as these where they are measured or found, and turned into typed polars frames
on their way into DuckDB, so a missing or misspelled column fails where the row is made. JSON
columns hold JSON text; TIMESTAMPTZ columns hold aware datetimes. `ComparisonRow` is never
built: the comparison is computed as a frame, and its fields name that frame's columns.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Sequence
from datetime import datetime
from types import NoneType, UnionType

import polars as pl

Json = str  # JSON text (json.dumps of the value)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CampaignRow:
    campaign_id: str
    started_at: datetime
    profile_name: str
    profile_path: str | None
    profile_sha256: str
    profile_text: str
    git_sha: str | None
    versions: Json | None  # controller package versions


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HostRow:
    campaign_id: str
    host: str
    address: str | None
    reach: str | None
    hostname: str | None
    cpu_model: str | None
    cpu_count: int | None
    memory_bytes: int | None
    device_kind: str | None
    gpu_count: int | None
    gpus: Json | None
    rdma: Json | None
    nics: Json | None
    link_gbit_per_s: float | None
    nvlink: Json | None
    nvlink_gbit_per_s: float | None
    versions: Json | None
    model_dir: str | None
    model_present: bool | None
    model_bytes: int | None
    clock_offset_s: float | None
    checked_at: datetime | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class KvCacheRow:
    campaign_id: str
    tokens: int
    bytes: int
    bytes_per_token: int
    architecture: str | None
    kv_dtype: str | None
    link: str
    link_source: str  # "host" (found by hardware_check), "catalogue", "model"
    link_gbit_per_s: float | None
    predicted_seconds: float | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunRow:
    run_id: str
    campaign_id: str
    arm: str
    point: str
    input_len: str
    output_len: str
    concurrency: int | None
    request_rate: float | None
    repeat: int
    instances: int
    gpus: int
    valid: bool
    invalid_reason: str | None
    requests: int
    failed: int
    duration_s: float | None
    request_throughput: float | None
    output_throughput: float | None
    total_throughput: float | None
    output_throughput_per_gpu: float | None
    total_throughput_per_gpu: float | None
    goodput: float | None
    slo_ttft_ms: float | None
    slo_tpot_ms: float | None
    ttft_mean_ms: float | None
    ttft_p50_ms: float | None
    ttft_p90_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None
    tpot_mean_ms: float | None
    tpot_p50_ms: float | None
    tpot_p90_ms: float | None
    tpot_p95_ms: float | None
    tpot_p99_ms: float | None
    itl_mean_ms: float | None
    itl_p50_ms: float | None
    itl_p90_ms: float | None
    itl_p95_ms: float | None
    itl_p99_ms: float | None
    e2e_mean_ms: float | None
    e2e_p50_ms: float | None
    e2e_p90_ms: float | None
    e2e_p95_ms: float | None
    e2e_p99_ms: float | None
    kv_bytes: float | None
    kv_transfers: float | None
    kv_xfer_time_s: float | None
    kv_failed_transfers: float | None
    kv_external_tokens: float | None
    kv_params_missing: float | None
    started_at: datetime | None
    variant: str | None
    window_start: float | None
    window_end: float | None
    window_s: float | None
    window_requests: int | None
    window_short: bool | None
    saturated: bool | None
    whole_run_duration_s: float | None
    whole_run_output_throughput: float | None
    whole_run_request_throughput: float | None
    layout: str | None  # "1P1D", "2R"; None for single
    engine_variant: str | None
    engine_args: Json | None  # the engine variant's vLLM arguments, applied to every arm
    searched_for: str | None  # the SLO tier a rate search measured this run for
    backend_requests: Json | None  # {role: {backend url: requests served}}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RequestRow:
    run_id: str
    campaign_id: str
    arm: str
    request_index: int
    request_id: str
    served_by: str | None
    sent_at: float | None
    ttft_s: float | None
    tpot_s: float | None
    e2e_s: float | None
    itl_s: Json | None
    prompt_tokens: int | None
    output_tokens: int | None
    expected_prompt_tokens: int | None
    expected_output_tokens: int | None
    status: int | None
    error: str | None
    ok: bool
    variant: str | None
    prefill_s: float | None
    handoff_s: float | None
    kv_blocks: int | None
    scheduled_at: float | None
    queue_s: float | None
    in_window: bool | None
    layout: str | None
    engine_variant: str | None
    proxy_s: float | None  # the proxy's time from the request's arrival to its first byte


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ServerMetricRow:
    run_id: str
    campaign_id: str
    arm: str
    server: str
    name: str
    labels: Json | None
    before: float | None
    after: float | None
    delta: float | None
    variant: str | None
    layout: str | None
    engine_variant: str | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HandoffVariantRow:
    campaign_id: str
    arm: str
    variant: str
    kv_connector: str
    handoff: str
    kv_connector_extra_config: Json | None
    env: Json | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ComparisonRow:
    campaign_id: str
    input_len: str
    output_len: str
    concurrency: int | None
    request_rate: float | None
    arm: str
    gpus: int | None
    valid_repeats: int | None
    output_throughput: float | None
    output_throughput_per_gpu: float | None
    output_throughput_per_gpu_std: float | None
    goodput: float | None
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    tpot_p50_ms: float | None
    tpot_p99_ms: float | None
    per_gpu_vs_single: float | None
    per_gpu_vs_replicated: float | None
    ttft_p50_vs_replicated: float | None
    tpot_p50_vs_replicated: float | None
    kv_bytes_per_transfer: float | None
    kv_seconds_per_transfer: float | None
    kv_gbyte_per_s: float | None
    kv_predicted_bytes: float | None
    variant: str | None
    kv_link: str | None
    kv_link_gbyte_per_s: float | None
    kv_link_fraction: float | None
    layout: str | None
    engine_variant: str | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SloGoodputRow:
    """One valid run judged at one SLO tier (report/slo.py)."""

    campaign_id: str
    tier: str
    ttft_ms: float | None  # the tier's limits; None: no limit on that one
    tpot_ms: float | None
    attainment_target: float
    run_id: str
    arm: str
    variant: str | None
    input_len: str
    output_len: str
    concurrency: int | None
    request_rate: float | None
    repeat: int
    gpus: int
    window_s: float | None
    requests: int  # counted: started inside the steady window
    requests_met: int
    attainment: float | None
    goodput_per_gpu: float | None
    output_throughput_per_gpu: float | None
    point_attainment: float | None  # over the repeats of the run's point
    point_met: bool
    best: bool  # the run's point is where its series serves most within the tier
    layout: str | None
    engine_variant: str | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RegimeMapRow:
    """One cell of the regime map: a shape at one TTFT and TPOT limit (report/regime.py)."""

    campaign_id: str
    input_len: str
    output_len: str
    ttft_ms: float
    tpot_ms: float
    attainment: float
    winner_arm: str | None
    winner_variant: str | None
    winner_goodput_per_gpu: float | None
    baseline_goodput_per_gpu: float | None
    challenger_arm: str | None
    challenger_variant: str | None
    challenger_goodput_per_gpu: float | None
    difference: float | None
    difference_low: float | None
    difference_high: float | None
    tie: bool | None
    winner_layout: str | None
    winner_engine_variant: str | None
    challenger_layout: str | None
    challenger_engine_variant: str | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SloCapacityRow:
    """The highest open-loop request rate at which a series met an SLO tier, found by the rate
    search (loadgen/ratesearch.py) on one launch."""

    campaign_id: str
    arm: str
    layout: str | None
    engine_variant: str | None
    variant: str | None
    input_len: str
    output_len: str
    tier: str
    ttft_ms: float | None
    tpot_ms: float | None
    attainment_target: float
    gpus: int
    max_rate: float | None  # req/s; None: not even the lowest rate searched met the tier
    max_rate_per_gpu: float | None
    first_failing_rate: float | None  # None: the highest rate searched still met it
    bound: str  # "found", "below_min", "above_max" or "budget_spent" (loadgen/ratesearch.py)
    probes: Json  # [[rate, attainment], ...] in the order measured


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RecommendationRow:
    """Per SLO tier and shape: the setup to deploy and what it buys over replicas
    (report/recommend.py), from one campaign or a search's rounds pooled."""

    campaign_id: str
    tier: str
    ttft_ms: float | None
    tpot_ms: float | None
    attainment: float
    input_len: str
    output_len: str
    verdict: str  # "disaggregated", "replicated", "tie" or "none" (no setup meets the tier)
    setup: str | None  # the best disaggregated setup's label (the winner's, when none meets it)
    rival: str | None  # the best replicated setup on as many devices
    ratio: float | None  # setup's goodput per GPU over rival's, each at its best load
    ratio_low: float | None
    ratio_high: float | None
    sentence: str
    evidence: Json  # run ids of both at their best loads
    campaigns: Json  # the campaigns whose runs were pooled
    # What dominates the comparison instead of the architecture, when something does (e.g.
    # NIXL's progress thread spinning on a CPU instance's only core); None otherwise.
    caveat: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SearchRoundRow:
    """One round of a search (search.py): round 0 is the profile's own campaign."""

    campaign_id: str  # the search's: its round 0
    round: int
    round_campaign_id: str
    seconds: float
    runs: int
    deciders: Json  # [{input_len, output_len, layout, concurrency, reason}, ...]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class KvCostModelRow:
    """Per KV link: the time of one NIXL transfer as fixed + per descriptor + per byte, fitted
    over a campaign's healthy runs (report/kvcost.py)."""

    campaign_id: str
    link: str | None  # as comparison.kv_link names it; None: not found by hardware_check
    link_gbyte_per_s: float | None  # its nominal rate
    fixed_s: float
    per_descriptor_s: float
    per_byte_s: float
    n_runs: int
    n_settings: int  # (layout, engine variant, handoff variant) combinations fitted over
    block_sizes: Json  # [16, 128]: the block sizes fitted over
    descriptors_source: str  # "metric", "estimate" or "mixed"
    r2: float | None
    held_out_error: float | None  # median |relative error|, each setting fitted without it
    achieved_gbyte_per_s: float | None  # median over the runs fitted


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class KvCostFitRow:
    """One disaggregated run's time per KV transfer, measured and as its link's cost model
    predicts it, and whether its transport is degraded (report/kvcost.py)."""

    campaign_id: str
    run_id: str
    link: str | None
    layout: str | None
    engine_variant: str | None
    variant: str | None
    block_size: int
    bytes_per_transfer: float
    descriptors_per_transfer: float
    descriptors_source: str  # "metric" (vllm:nixl_num_descriptors) or "estimate"
    measured_s: float
    predicted_s: float | None  # the link's model; None: too few runs for one
    held_out_predicted_s: float | None  # the model fitted without the run's setting
    degraded: bool
    degraded_reason: str | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LaunchServerRow:
    """One vLLM server of one launch, as the preflight found it before the first point
    (preflight.py): its idle CPU and, for a KV server, how the KV cache moves."""

    campaign_id: str
    arm: str
    launch: str  # the plan key: "disaggregated-1P1D-block128-pull"
    layout: str | None
    engine_variant: str | None
    variant: str | None
    server: str
    role: str  # "standalone", "prefill" or "decode"
    host: str
    device_kind: str  # "cuda" or "cpu": on a CPU host a device is a core
    devices: Json
    idle_cpu_cores: float  # CPU cores the server's processes use with no request in flight
    block_size: int | None  # from vllm:cache_config_info
    nixl_version: str | None
    kv_layout: str | None  # as vLLM logged it: "LBHNC", "HND"
    kv_contiguous_across_layers: bool | None  # one region per block for all layers
    preflight_kv_blocks: int | None  # KV blocks the preflight request handed over
    descriptors_per_block: float | None  # NIXL descriptors posted per block, measured
    kv_protocols: Json | None  # UCX's remote memory protocols: [{scope, operation, ranges, lanes}]
    kv_lanes: str | None  # "cma/memory (intra-node get)": the lanes of the KV reads/writes
    preflight_error: str | None  # the preflight request's failure, if it failed


Row = (
    CampaignRow
    | HostRow
    | KvCacheRow
    | RunRow
    | RequestRow
    | ServerMetricRow
    | HandoffVariantRow
    | ComparisonRow
    | SloGoodputRow
    | RegimeMapRow
    | SloCapacityRow
    | RecommendationRow
    | SearchRoundRow
    | KvCostModelRow
    | KvCostFitRow
    | LaunchServerRow
)

ROW_CLASSES: dict[str, type[Row]] = {
    "campaigns": CampaignRow,
    "hosts": HostRow,
    "kv_cache": KvCacheRow,
    "runs": RunRow,
    "requests": RequestRow,
    "server_metrics": ServerMetricRow,
    "handoff_variants": HandoffVariantRow,
    "comparison": ComparisonRow,
    "slo_goodput": SloGoodputRow,
    "regime_map": RegimeMapRow,
    "slo_capacity": SloCapacityRow,
    "recommendations": RecommendationRow,
    "search_rounds": SearchRoundRow,
    "kv_cost_model": KvCostModelRow,
    "kv_cost_fit": KvCostFitRow,
    "launch_servers": LaunchServerRow,
}

_DTYPES: dict[type, pl.DataType] = {
    str: pl.String(),
    int: pl.Int64(),
    float: pl.Float64(),
    bool: pl.Boolean(),
    datetime: pl.Datetime("us", "UTC"),
}


def columns(row_class: type[Row]) -> list[str]:
    """The table's columns, in order."""
    return [f.name for f in dataclasses.fields(row_class)]


@functools.cache
def polars_schema(row_class: type[Row]) -> dict[str, pl.DataType]:
    """Each column's polars type, from the field's annotation (`X | None` is a nullable X)."""
    schema = {}
    for name, hint in typing.get_type_hints(row_class).items():
        if isinstance(hint, UnionType):
            (hint,) = (t for t in typing.get_args(hint) if t is not NoneType)
        schema[name] = _DTYPES[hint]
    return schema


def to_frame(rows: Sequence[Row]) -> pl.DataFrame:
    """Rows of one class as a frame of its columns, typed even where every value is None."""
    if not rows:
        return pl.DataFrame()
    row_class = type(rows[0])
    if any(type(r) is not row_class for r in rows):
        raise TypeError(f"rows of more than one table given as {row_class.__name__} rows")
    return pl.DataFrame(
        {name: [getattr(r, name) for r in rows] for name in columns(row_class)},
        schema=polars_schema(row_class),
    )
