"""The figures against load: output tokens/s (in all and per GPU), latency and goodput."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pdpipeline.report.figures.figure import Figure, Inputs
from pdpipeline.report.figures.style import panels, save_panels


def throughput(comparison: pl.DataFrame, path: Path, per_gpu: bool) -> Path:
    """Output tokens/s against load, one line per series, error bars = spread."""
    column = "output_throughput_per_gpu" if per_gpu else "output_throughput"
    p = panels(comparison, "Output tokens/s per GPU" if per_gpu else "Output tokens/s")
    for ax, (n_in, n_out, shape) in zip(p.axes[0], p.shapes, strict=True):
        for series, look in p.looks.items():
            rows = shape.filter(series.rows()).sort(p.key)
            if rows.height:
                errors = rows["output_throughput_per_gpu_std"].fill_null(0) if per_gpu else None
                ax.errorbar(rows[p.key], rows[column], yerr=errors, capsize=3, **look)
        p.style(ax, f"prompt {n_in} / output {n_out}", p.label, "tokens/s")
    return save_panels(p, path)


def latency(comparison: pl.DataFrame, path: Path) -> Path:
    """TTFT and TPOT p50 (solid) and p99 (dashed) against load, per series."""
    p = panels(comparison, "Latency: p50 solid, p99 dashed", rows=2)
    for col, (n_in, n_out, shape) in enumerate(p.shapes):
        for row, metric in enumerate(("ttft", "tpot")):
            ax = p.axes[row][col]
            for series, look in p.looks.items():
                rows = shape.filter(series.rows()).sort(p.key)
                if rows.height:
                    # Here line style tells p50 from p99; shade and marker tell the series.
                    ax.plot(rows[p.key], rows[f"{metric}_p50_ms"], **{**look, "linestyle": "-"})
                    ax.plot(rows[p.key], rows[f"{metric}_p99_ms"], "--", color=look["color"])
            p.style(ax, f"{metric.upper()}, prompt {n_in} / output {n_out}", p.label, "ms")
    return save_panels(p, path)


def goodput(comparison: pl.DataFrame, path: Path, slo: str) -> Path:
    """Requests/s meeting every SLO, against load."""
    p = panels(comparison, f"Goodput ({slo})")
    for ax, (n_in, n_out, shape) in zip(p.axes[0], p.shapes, strict=True):
        for series, look in p.looks.items():
            rows = shape.filter(series.rows()).sort(p.key)
            if rows.height:
                ax.plot(rows[p.key], rows["goodput"], **look)
        p.style(ax, f"prompt {n_in} / output {n_out}", p.label, "requests/s in SLO")
    return save_panels(p, path)


def _comparison(inputs: Inputs) -> pl.DataFrame:
    return inputs.campaign["comparison"]


def _slo(inputs: Inputs) -> str:
    """The limits each run's own goodput was counted against, for the goodput figure's title."""
    runs = inputs.campaign.runs
    return f"TTFT <= {runs['slo_ttft_ms'][0]:.0f} ms, TPOT <= {runs['slo_tpot_ms'][0]:.0f} ms"


THROUGHPUT_PER_GPU = Figure(
    "throughput_per_gpu",
    "Output tokens/s per GPU against load (error bars: run-to-run sd)",
    lambda inputs, path: throughput(_comparison(inputs), path, per_gpu=True),
)
THROUGHPUT = Figure(
    "throughput",
    "Output tokens/s against load",
    lambda inputs, path: throughput(_comparison(inputs), path, per_gpu=False),
)
LATENCY = Figure(
    "latency",
    "TTFT and TPOT against load (p50 solid, p99 dashed)",
    lambda inputs, path: latency(_comparison(inputs), path),
)
GOODPUT = Figure(
    "goodput",
    "Goodput: requests/s meeting the SLO, against load",
    lambda inputs, path: goodput(_comparison(inputs), path, _slo(inputs)),
)
