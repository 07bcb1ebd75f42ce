"""Constructed campaigns for the report tests: runs and their requests with known answers."""

from __future__ import annotations

import json
import statistics

import polars as pl

from pdpipeline.profile import SloTier
from pdpipeline.report.columns import with_current_columns
from pdpipeline.report.series import Series
from pdpipeline.warehouse.rows import LaunchServerRow

PUSH = ("disaggregated", "push")
REPLICATED = ("replicated", None)
SHAPE = ("512", "64")
OUTPUT_TOKENS = 64


def request(ttft_ms: float | None, tpot_ms: float | None, ok: bool = True, **more) -> dict:
    return {
        "ok": ok,
        "ttft_s": None if ttft_ms is None else ttft_ms / 1000,
        "tpot_s": None if tpot_ms is None else tpot_ms / 1000,
        **more,
    }


def _series(series: tuple[str, str | None] | Series) -> Series:
    """A series given as (arm, handoff variant), as campaigns before layouts had, or whole."""
    return series if isinstance(series, Series) else Series(series[0], variant=series[1])


def devices(series: Series, default: int = 2) -> int:
    """The devices of a series' layout: x + y of 'xPyD', n of 'nR'; `default` without one."""
    if series.layout is None:
        return default
    if series.layout.endswith("R"):
        return int(series.layout[:-1])
    prefill, decode = series.layout.removesuffix("D").split("P")
    return int(prefill) + int(decode)


def _latency(requests: list[dict], column: str, q: float) -> float | None:
    values = sorted(r[column] * 1000 for r in requests if r.get(column) is not None)
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def campaign(
    runs: list[tuple[tuple[str, str | None] | Series, int, int, float, list[dict]]],
    gpus: int = 2,
    **run_columns,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Runs and their requests, each run given as (series, concurrency, repeat, duration_s,
    requests); one shape, 512/64. A series with a layout is on that layout's devices, any
    other on `gpus`; each run's summary figures are its requests'."""
    run_rows, request_rows = [], []
    for i, (given, concurrency, repeat, duration, requests) in enumerate(runs):
        series = _series(given)
        run_id = f"run-{i}"
        n = devices(series, gpus)
        moved = series.arm == "disaggregated"
        run_rows.append(
            {
                "run_id": run_id,
                "campaign_id": "c",
                "arm": series.arm,
                "layout": series.layout,
                "engine_variant": series.engine_variant,
                "variant": series.variant,
                "point": f"{SHAPE[0]}x{SHAPE[1]}@c{concurrency}",
                "input_len": SHAPE[0],
                "output_len": SHAPE[1],
                "concurrency": concurrency,
                "request_rate": None,
                "repeat": repeat,
                "instances": n,
                "gpus": n,
                "valid": True,
                "requests": len(requests),
                "failed": sum(not r["ok"] for r in requests),
                "duration_s": duration,
                "output_throughput": OUTPUT_TOKENS * len(requests) / duration,
                "output_throughput_per_gpu": OUTPUT_TOKENS * len(requests) / duration / n,
                "goodput": len(requests) / duration,
                "ttft_p50_ms": _latency(requests, "ttft_s", 0.5),
                "ttft_p99_ms": _latency(requests, "ttft_s", 0.99),
                "tpot_p50_ms": _latency(requests, "tpot_s", 0.5),
                "tpot_p99_ms": _latency(requests, "tpot_s", 0.99),
                "kv_transfers": len(requests) if moved else 0,
                "kv_bytes": 1e6 * len(requests) if moved else 0.0,
                "kv_xfer_time_s": 1e-3 * len(requests) if moved else 0.0,
                "slo_ttft_ms": 500.0,
                "slo_tpot_ms": 50.0,
            }
            | {k: v[i] for k, v in run_columns.items()}
        )
        request_rows += [
            {
                "run_id": run_id,
                "campaign_id": "c",
                "arm": series.arm,
                "layout": series.layout,
                "engine_variant": series.engine_variant,
                "variant": series.variant,
                "request_index": j,
                "request_id": f"{run_id}-{j}",
                **r,
            }
            for j, r in enumerate(requests)
        ]
    runs_frame = pl.DataFrame(
        run_rows,
        schema_overrides={
            "request_rate": pl.Float64,
            "layout": pl.Utf8,
            "engine_variant": pl.Utf8,
            "variant": pl.Utf8,
        },
    )
    requests_frame = pl.DataFrame(
        request_rows,
        schema_overrides=dict.fromkeys(["layout", "engine_variant", "variant"], pl.Utf8),
    )
    return with_current_columns(runs_frame), requests_frame


# --- a campaign of two layouts and two engine variants --------------------------------------
#
# 1P1D is set against 2R on two devices and 3P1D against 4R on four, each in two engine variants
# (a KV block size of 16 or 128 tokens), the disaggregated layouts each with a pull and a push
# handoff; single on one device. Every request meets any tier its series' latencies meet, so a
# run's goodput is its request rate: the values below, in requests/s per GPU, are what every
# ratio of the report is made of (output tokens/s per GPU are 64 times them).
ENGINES = ("block16", "block128")
GOODPUT = {
    Series("single", None, "block16"): 5.0,
    Series("single", None, "block128"): 5.5,
    Series("replicated", "2R", "block16"): 3.0,
    Series("replicated", "2R", "block128"): 2.8,
    Series("replicated", "4R", "block16"): 2.5,
    Series("replicated", "4R", "block128"): 3.2,
    Series("disaggregated", "1P1D", "block16", "pull"): 2.7,
    Series("disaggregated", "1P1D", "block128", "pull"): 2.95,
    Series("disaggregated", "1P1D", "block16", "push"): 3.1,
    Series("disaggregated", "1P1D", "block128", "push"): 3.35,
    Series("disaggregated", "3P1D", "block16", "pull"): 3.0,
    Series("disaggregated", "3P1D", "block128", "pull"): 3.4,
    Series("disaggregated", "3P1D", "block16", "push"): 3.6,
    Series("disaggregated", "3P1D", "block128", "push"): 3.9,
}
# (TTFT, TPOT) ms of every request: replicated answers fast and decodes slowly, the layouts
# decode fast, 3P1D's single decode instance queues its prefills' handoffs longer.
LATENCY = {"single": (10.0, 1.0), "replicated": (50.0, 20.0), "1P1D": (400.0, 5.0)}
LATENCY["3P1D"] = (800.0, 5.0)
# The run-to-run spread of each series' three repeats: 1P1D pull's is wide, the rest narrow.
SPREAD = {"1P1D-pull": (0.9, 1.0, 1.1)}
NARROW = (0.99, 1.0, 1.01)
REQUESTS_PER_RUN = 20


def layouts_campaign() -> tuple[pl.DataFrame, pl.DataFrame]:
    """The runs and requests of the two-layout, two-engine campaign (one load, c=8)."""
    runs = []
    for series, goodput in GOODPUT.items():
        ttft, tpot = LATENCY.get(series.layout, LATENCY.get(series.arm))
        spread = SPREAD.get(f"{series.layout}-{series.variant}", NARROW)
        for repeat, factor in enumerate(spread):
            value = goodput * factor
            duration = REQUESTS_PER_RUN / value / devices(series, 1)
            runs.append((series, 8, repeat, duration, [request(ttft, tpot)] * REQUESTS_PER_RUN))
    return campaign(runs, gpus=1)


# The constructed campaign's tiers: each tells a different pair of its series apart.
LAYOUT_TIERS = {
    # Every series meets it.
    "loose": SloTier(ttft_ms=1000, tpot_ms=30),
    # 3P1D's 800 ms TTFT misses it.
    "interactive": SloTier(ttft_ms=500, tpot_ms=30),
    # Replication's 20 ms TPOT misses it.
    "streaming": SloTier(ttft_ms=1000, tpot_ms=10),
}


def server(role: str, device_kind: str, idle: float, devices=(0,)) -> LaunchServerRow:
    """A preflight row (`launch_servers`) of one server of a 1P1D launch, or a standalone one."""
    kv = role != "standalone"
    return LaunchServerRow(
        campaign_id="c",
        arm="disaggregated" if kv else "single",
        launch="l",
        layout="1P1D" if kv else None,
        engine_variant=None,
        variant="pull" if kv else None,
        server=f"{role}-0",
        role=role,
        host="h",
        device_kind=device_kind,
        devices=json.dumps(list(devices)),
        idle_cpu_cores=idle,
        block_size=128,
        nixl_version="1.5.1" if kv else None,
        kv_layout="LBHNC" if kv else None,
        kv_contiguous_across_layers=False if kv else None,
        preflight_kv_blocks=3 if kv else None,
        descriptors_per_block=0.7 if kv else None,
        kv_protocols="[]" if kv else None,
        kv_lanes="cma/memory (intra-node get)" if kv else None,
        preflight_error=None,
    )
