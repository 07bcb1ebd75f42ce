"""The published campaigns under results/, read back as the warehouse holds them."""

from __future__ import annotations

from pathlib import Path

import polars as pl

RESULTS = Path(__file__).resolve().parents[2] / "results"
VARIANTS = RESULTS / "h100x2-pull-vs-push-2026-11-27"
PUSH_VS_PULL = RESULTS / "h200x2-push-vs-pull-2026-11-27"
BASELINES = RESULTS / "h100x2-2026-11-27"
CAMPAIGN = "h100x2-20261127T062458Z"


def read_csv(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, try_parse_dates=True)


def lengths_as_text(frame: pl.DataFrame) -> pl.DataFrame:
    if "input_len" not in frame.columns:
        return frame
    return frame.with_columns(pl.col("input_len", "output_len").cast(pl.Utf8))


def two_variant_campaign() -> dict[str, pl.DataFrame]:
    """The published campaign's tables, as the warehouse holds them (comparison left out)."""
    tables = {
        t: lengths_as_text(read_csv(VARIANTS / f"{t}.csv"))
        for t in ("campaigns", "hosts", "kv_cache", "runs", "handoff_variants")
    }
    tables["runs"] = tables["runs"].with_columns(pl.col("request_rate").cast(pl.Float64))
    tables["campaigns"] = tables["campaigns"].with_columns(
        profile_text=pl.lit((VARIANTS / "profile.yaml").read_text())
    )
    tables["requests"] = pl.read_parquet(VARIANTS / "requests.parquet")
    return tables
