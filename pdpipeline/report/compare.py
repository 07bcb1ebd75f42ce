"""Comparison of series per workload point: each against single and against replicated.

Replicated is the fair baseline for disaggregation: a layout is set against replicas on as many
devices, with the same engine variant; single shows what one instance with that engine variant
does. Each series (arm, layout, engine variant, handoff variant) is its own row. Only valid runs
count; repeats of a point are averaged and their spread kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from pdpipeline.kvcache import KVLayout

# The keys and the up-to-date step live in report/columns.py; named here too for search.py.
from pdpipeline.report.columns import POINT_KEYS as POINT_KEYS
from pdpipeline.report.columns import SERIES_KEYS as SERIES_KEYS
from pdpipeline.report.columns import with_current_columns as with_current_columns
from pdpipeline.report.series import arm_label as arm_label  # for callers that import it here
from pdpipeline.report.series import in_order, rival_devices
from pdpipeline.warehouse.rows import ComparisonRow, columns


@dataclass(frozen=True)
class KvLink:
    """The link the KV cache crosses from prefill to decode, at its nominal rate."""

    name: str  # e.g. "gpu-a NVLink", or two hosts joined by an en dash and " network"
    gbyte_per_s: float  # bytes, not bits


def link_between(hosts: pl.DataFrame, prefill: list[str], decode: list[str]) -> KvLink | None:
    """The link between the prefill and decode hosts, from hardware_check's `hosts` rows.

    One CUDA host with NVLink: its NVLink. Several hosts: the slowest of their network links.
    Anything else (CPU on one host, no NVLink, a rate not found) has no known link: None.
    """
    names = list(dict.fromkeys([*prefill, *decode]))
    found = {r["host"]: r for r in hosts.iter_rows(named=True)}
    if not names or any(n not in found for n in names):
        return None
    if len(names) == 1:
        host = found[names[0]]
        nvlink = host.get("nvlink_gbit_per_s")
        if host.get("device_kind") == "cuda" and nvlink:
            return KvLink(f"{names[0]} NVLink", nvlink / 8)
        return None
    rates = [found[n].get("link_gbit_per_s") for n in names]
    if not all(rates):
        return None
    return KvLink(f"{'–'.join(names)} network", min(rates) / 8)


def fixed_length(text: str) -> int | None:
    """The token count of a fixed length ('512'); None for a range ('256:1024')."""
    return int(text) if text.isdigit() else None


def compare(
    runs: pl.DataFrame,
    kv_layout: KVLayout | None = None,
    link: KvLink | Mapping[str | None, KvLink | None] | None = None,
) -> pl.DataFrame:
    """One row per point and series with averaged figures and ratios to the baselines.

    A row is set against single with the same engine variant, and against replicated with the
    same engine variant on as many devices (null where the campaign has none); single, which has
    no layout, against the smallest replicated series. `link` is the KV link of every
    disaggregated row, or one per layout."""
    runs = with_current_columns(runs)
    keys = [*POINT_KEYS, *SERIES_KEYS]
    valid = runs.filter(pl.col("valid"))
    per_arm = (
        runs.group_by(keys)
        .agg(
            pl.col("campaign_id").first(),
            pl.col("gpus").first(),
            pl.col("valid").sum().alias("valid_repeats"),
        )
        .join(
            valid.group_by(keys).agg(
                pl.col("output_throughput").mean(),
                pl.col("output_throughput_per_gpu").mean(),
                pl.col("output_throughput_per_gpu").std().alias("output_throughput_per_gpu_std"),
                pl.col("goodput").mean(),
                pl.col("ttft_p50_ms").mean(),
                pl.col("ttft_p99_ms").mean(),
                pl.col("tpot_p50_ms").mean(),
                pl.col("tpot_p99_ms").mean(),
                *_kv_figures(),
            ),
            on=keys,
            how="left",
            nulls_equal=True,
        )
    )
    per_arm = _with_baselines(per_arm).with_columns(
        (pl.col("output_throughput_per_gpu") / pl.col("_single_per_gpu")).alias(
            "per_gpu_vs_single"
        ),
        (pl.col("output_throughput_per_gpu") / pl.col("_replicated_per_gpu")).alias(
            "per_gpu_vs_replicated"
        ),
        (pl.col("ttft_p50_ms") / pl.col("_replicated_ttft")).alias("ttft_p50_vs_replicated"),
        (pl.col("tpot_p50_ms") / pl.col("_replicated_tpot")).alias("tpot_p50_vs_replicated"),
        pl.col("input_len")
        .map_elements(
            lambda n: _predicted_bytes(kv_layout, n), return_dtype=pl.Float64, skip_nulls=True
        )
        .alias("kv_predicted_bytes"),
    )
    moved = pl.col("arm") == "disaggregated"
    per_arm = (
        _with_links(per_arm, link)
        .with_columns(
            pl.when(moved).then(pl.col("kv_predicted_bytes")).alias("kv_predicted_bytes"),
            pl.when(moved).then(pl.col("kv_link")).alias("kv_link"),
            pl.when(moved).then(pl.col("kv_link_gbyte_per_s")).alias("kv_link_gbyte_per_s"),
        )
        .with_columns(
            (pl.col("kv_gbyte_per_s") / pl.col("kv_link_gbyte_per_s")).alias("kv_link_fraction")
        )
    )
    # Exactly the comparison table's columns, in its order; rows by point, then series.
    return in_order(per_arm.select(columns(ComparisonRow)), *POINT_KEYS)


def _with_baselines(per_arm: pl.DataFrame) -> pl.DataFrame:
    """Each row with its single and replicated baselines' per-GPU throughput, TTFT and TPOT p50
    (`_single_per_gpu`, `_replicated_ttft`, ...)."""
    same = [*POINT_KEYS, "engine_variant"]

    def figures(arm: str) -> pl.DataFrame:
        return per_arm.filter(pl.col("arm") == arm).select(
            *same,
            pl.col("gpus").alias("_rival_gpus"),
            pl.col("output_throughput_per_gpu").alias(f"_{arm}_per_gpu"),
            pl.col("ttft_p50_ms").alias(f"_{arm}_ttft"),
            pl.col("tpot_p50_ms").alias(f"_{arm}_tpot"),
        )

    sizes = (
        per_arm.filter(pl.col("arm") == "replicated")
        .group_by(same)
        .agg(pl.col("gpus").alias("_sizes"))
    )
    rival = pl.struct("arm", "gpus", "_sizes").map_elements(
        lambda r: rival_devices(r["arm"], r["gpus"], r["_sizes"] or []),
        return_dtype=pl.Int64,
    )
    return (
        per_arm.join(figures("single").drop("_rival_gpus"), on=same, how="left", nulls_equal=True)
        .join(sizes, on=same, how="left", nulls_equal=True)
        .with_columns(_rival_gpus=rival)
        .join(
            figures("replicated").with_columns(pl.col("_rival_gpus").cast(pl.Int64)),
            on=[*same, "_rival_gpus"],
            how="left",
            nulls_equal=True,
        )
    )


def _with_links(per_arm: pl.DataFrame, link: KvLink | Mapping | None) -> pl.DataFrame:
    """`kv_link` and `kv_link_gbyte_per_s`: `link`, or the link of each row's layout."""
    if not isinstance(link, Mapping):
        return per_arm.with_columns(
            kv_link=pl.lit(link and link.name, dtype=pl.Utf8),
            kv_link_gbyte_per_s=pl.lit(link and link.gbyte_per_s, dtype=pl.Float64),
        )
    links = pl.DataFrame(
        [
            {"layout": layout, "kv_link": k.name, "kv_link_gbyte_per_s": k.gbyte_per_s}
            for layout, k in link.items()
            if k is not None
        ],
        schema={"layout": pl.Utf8, "kv_link": pl.Utf8, "kv_link_gbyte_per_s": pl.Float64},
    )
    return per_arm.join(links, on="layout", how="left", nulls_equal=True)


def _kv_figures() -> list[pl.Expr]:
    """Per-transfer bytes and time, and bandwidth; null where no KV moved (non-disaggregated)."""
    moved = pl.col("kv_transfers").sum() > 0

    def per(numerator: str, denominator: str, scale: float = 1.0) -> pl.Expr:
        return pl.when(moved).then(pl.col(numerator).sum() / pl.col(denominator).sum() / scale)

    return [
        per("kv_bytes", "kv_transfers").alias("kv_bytes_per_transfer"),
        per("kv_xfer_time_s", "kv_transfers").alias("kv_seconds_per_transfer"),
        per("kv_bytes", "kv_xfer_time_s", 1e9).alias("kv_gbyte_per_s"),
    ]


def _predicted_bytes(layout: KVLayout | None, input_len: str) -> float | None:
    length = fixed_length(input_len)
    if layout is None or length is None:
        return None
    return float(layout.bytes_for(length))
