"""Comparison of arms per workload point: each against single and against replicated.

Replicated is the fair baseline for disaggregation (the same number of GPUs); single shows what
one instance does. Only valid runs count; repeats of a point are averaged and their spread kept.
"""

from __future__ import annotations

import polars as pl

from pdpipeline.kvcache import KVLayout

ARM_ORDER = {"single": 0, "replicated": 1, "disaggregated": 2}
# A workload point: what every arm is measured at.
POINT_KEYS = ["input_len", "output_len", "concurrency", "request_rate"]


def fixed_length(text: str) -> int | None:
    """The token count of a fixed length ('512'); None for a range ('256:1024')."""
    return int(text) if text.isdigit() else None


def compare(runs: pl.DataFrame, layout: KVLayout | None = None) -> pl.DataFrame:
    """One row per (point, arm) with averaged figures and ratios to the baselines."""
    valid = runs.filter(pl.col("valid"))
    per_arm = (
        runs.group_by([*POINT_KEYS, "arm"])
        .agg(
            pl.col("campaign_id").first(),
            pl.col("gpus").first(),
            pl.col("valid").sum().alias("valid_repeats"),
        )
        .join(
            valid.group_by([*POINT_KEYS, "arm"]).agg(
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
            on=[*POINT_KEYS, "arm"],
            how="left",
            nulls_equal=True,
        )
    )
    for baseline in ("single", "replicated"):
        base = per_arm.filter(pl.col("arm") == baseline).select(
            *POINT_KEYS,
            pl.col("output_throughput_per_gpu").alias(f"_{baseline}_per_gpu"),
            pl.col("ttft_p50_ms").alias(f"_{baseline}_ttft"),
            pl.col("tpot_p50_ms").alias(f"_{baseline}_tpot"),
        )
        per_arm = per_arm.join(base, on=POINT_KEYS, how="left", nulls_equal=True)
    per_arm = per_arm.with_columns(
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
            lambda n: _predicted_bytes(layout, n), return_dtype=pl.Float64, skip_nulls=True
        )
        .alias("kv_predicted_bytes"),
    )
    per_arm = per_arm.with_columns(
        pl.when(pl.col("arm") == "disaggregated")
        .then(pl.col("kv_predicted_bytes"))
        .alias("kv_predicted_bytes")
    )
    return per_arm.drop(pl.selectors.starts_with("_")).sort(
        [*POINT_KEYS, pl.col("arm").replace_strict(ARM_ORDER)], nulls_last=True
    )


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


def _fmt(value, pattern: str = "{:.1f}") -> str:
    return "–" if value is None else pattern.format(value)


def _load(row: dict) -> str:
    return (
        f"c={row['concurrency']}" if row["concurrency"] is not None else f"{row['request_rate']}/s"
    )


def markdown(comparison: pl.DataFrame) -> str:
    """The comparison as markdown tables: throughput and latency per point, then KV transfer."""
    lines = [
        "| input | output | load | arm | GPUs | valid | out tok/s | per GPU (±sd) "
        "| vs single | vs replicated | TTFT p50/p99 ms | TPOT p50/p99 ms | goodput req/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in comparison.iter_rows(named=True):
        load = _load(r)
        lines.append(
            f"| {r['input_len']} | {r['output_len']} | {load} | {r['arm']} | {r['gpus']} "
            f"| {r['valid_repeats']} | {_fmt(r['output_throughput'])} "
            f"| {_fmt(r['output_throughput_per_gpu'])} ±{_fmt(r['output_throughput_per_gpu_std'])} "
            f"| {_fmt(r['per_gpu_vs_single'], '{:.2f}x')} "
            f"| {_fmt(r['per_gpu_vs_replicated'], '{:.2f}x')} "
            f"| {_fmt(r['ttft_p50_ms'])} / {_fmt(r['ttft_p99_ms'])} "
            f"| {_fmt(r['tpot_p50_ms'], '{:.2f}')} / {_fmt(r['tpot_p99_ms'], '{:.2f}')} "
            f"| {_fmt(r['goodput'], '{:.2f}')} |"
        )
    kv = comparison.filter(pl.col("kv_bytes_per_transfer").is_not_null())
    if kv.height:
        lines += [
            "",
            "| input | load | KV bytes/transfer (predicted) | ms/transfer | GB/s |",
            "|---|---|---|---|---|",
        ]
        for r in kv.iter_rows(named=True):
            load = _load(r)
            ms = r["kv_seconds_per_transfer"] and r["kv_seconds_per_transfer"] * 1000
            lines.append(
                f"| {r['input_len']} | {load} | {_fmt(r['kv_bytes_per_transfer'], '{:,.0f}')} "
                f"({_fmt(r['kv_predicted_bytes'], '{:,.0f}')}) "
                f"| {_fmt(ms, '{:.2f}')} "
                f"| {_fmt(r['kv_gbyte_per_s'], '{:.3f}')} |"
            )
    return "\n".join(lines)
