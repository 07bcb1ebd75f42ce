"""Constructed campaigns for the SLO tests: runs and their requests with known answers."""

from __future__ import annotations

import polars as pl

from pdpipeline.report.compare import with_current_columns

PUSH = ("disaggregated", "push")
REPLICATED = ("replicated", None)


def request(ttft_ms: float | None, tpot_ms: float | None, ok: bool = True, **more) -> dict:
    return {
        "ok": ok,
        "ttft_s": None if ttft_ms is None else ttft_ms / 1000,
        "tpot_s": None if tpot_ms is None else tpot_ms / 1000,
        **more,
    }


def campaign(
    runs: list[tuple[tuple[str, str | None], int, int, float, list[dict]]],
    gpus: int = 2,
    **run_columns,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Runs and their requests, each run given as (series, concurrency, repeat, duration_s,
    requests); one shape, 512/64."""
    run_rows, request_rows = [], []
    for i, ((arm, variant), concurrency, repeat, duration, requests) in enumerate(runs):
        run_id = f"run-{i}"
        run_rows.append(
            {
                "run_id": run_id,
                "campaign_id": "c",
                "arm": arm,
                "variant": variant,
                "input_len": "512",
                "output_len": "64",
                "concurrency": concurrency,
                "request_rate": None,
                "repeat": repeat,
                "gpus": gpus,
                "valid": True,
                "requests": len(requests),
                "duration_s": duration,
                "output_throughput_per_gpu": 64 * len(requests) / duration / gpus,
                "slo_ttft_ms": 500.0,
                "slo_tpot_ms": 50.0,
            }
            | {k: v[i] for k, v in run_columns.items()}
        )
        request_rows += [
            {"run_id": run_id, "request_index": j, **r} for j, r in enumerate(requests)
        ]
    runs_frame = pl.DataFrame(run_rows, schema_overrides={"request_rate": pl.Float64})
    return with_current_columns(runs_frame), pl.DataFrame(request_rows)
