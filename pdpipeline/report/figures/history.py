"""The trend: each series' best per-GPU throughput across the profile's campaigns."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl

from pdpipeline.report.columns import SERIES_KEYS
from pdpipeline.report.figures.figure import Figure, Inputs
from pdpipeline.report.figures.style import save, series_looks
from pdpipeline.report.regression import regressed


def history(trend: pl.DataFrame, path: Path, regressions: pl.DataFrame | None = None) -> Path:
    """Each series' best per-GPU throughput per campaign over time; regressions marked."""
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    for series, look in series_looks(trend).items():
        rows = trend.filter(series.rows()).sort("started_at")
        if rows.height:
            ax.plot(rows["started_at"], rows["output_throughput_per_gpu"], **look)
    if regressions is not None and regressions.height:
        ax.scatter(
            regressions["started_at"],
            regressions["output_throughput_per_gpu"],
            s=160,
            facecolors="none",
            edgecolors="black",
            label="regression",
        )
    ax.set(title="Best output tokens/s per GPU, by campaign", ylabel="tokens/s")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.autofmt_xdate()
    return save(fig, path)


def _history(inputs: Inputs, path: Path) -> Path:
    """The trend, this campaign's regressions against the previous one marked."""
    campaign = inputs.campaign
    marked = campaign.trend.join(
        regressed(campaign, inputs.regression_threshold)
        .select(SERIES_KEYS)
        .unique()
        .with_columns(campaign_id=pl.lit(campaign.campaign_id)),
        on=["campaign_id", *SERIES_KEYS],
        nulls_equal=True,
    )
    return history(campaign.trend, path, marked)


FIGURE = Figure(
    "history",
    "Best output tokens/s per GPU across this profile's campaigns",
    _history,
    when=lambda inputs: inputs.campaign.trend["campaign_id"].n_unique() > 1,
)
