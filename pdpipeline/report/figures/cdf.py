"""The latency distributions at each shape's highest load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from pdpipeline.report.figures.figure import Figure
from pdpipeline.report.figures.style import panels, save_panels


def latency_cdfs(requests: pl.DataFrame, path: Path) -> Path:
    """CDFs of TTFT and TPOT per series at each shape's highest load."""
    p = panels(requests.filter(pl.col("ok")), "Latency distributions at the highest load", 2)
    for col, (n_in, n_out, shape) in enumerate(p.shapes):
        top = shape[p.key].max()
        shape = shape.filter(pl.col(p.key) == top)
        for row, metric in enumerate(("ttft_s", "tpot_s")):
            ax = p.axes[row][col]
            for series, look in p.looks.items():
                values = np.sort(shape.filter(series.rows())[metric].drop_nulls()) * 1000
                if len(values):
                    ax.plot(
                        values,
                        np.arange(1, len(values) + 1) / len(values),
                        color=look["color"],
                        linestyle=look["linestyle"],
                        label=look["label"],
                    )
            title = f"{metric[:4].upper()} CDF, {n_in}/{n_out} at {p.key} {top}"
            p.style(ax, title, "ms", "fraction of requests", log_x=False)
    return save_panels(p, path)


FIGURE = Figure(
    "latency_cdf",
    "TTFT and TPOT distributions at the highest load",
    lambda inputs, path: latency_cdfs(inputs.campaign.latency_samples, path),
    when=lambda inputs: inputs.campaign.latency_samples.height > 0,
)
