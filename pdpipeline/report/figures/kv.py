"""The KV transfer figures: time and rate per transfer against load and link, and each run against
the link's cost model."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl

from pdpipeline.report.columns import SERIES_KEYS
from pdpipeline.report.figures.figure import Figure
from pdpipeline.report.figures.style import (
    LINES,
    MARKERS,
    load_axis,
    save,
    save_with_legend_below,
    series_looks,
)
from pdpipeline.report.series import Series, series_of


def kv_transfer(comparison: pl.DataFrame, kv_cache: pl.DataFrame, path: Path) -> Path:
    """Per KV transfer, by prompt length and disaggregated series: time against predictions
    over links, and achieved GB/s against the nominal rate of the link between prefill and
    decode."""
    fig, (time_ax, rate_ax) = plt.subplots(1, 2, figsize=(13.0, 4.8))
    measured = comparison.filter(
        pl.col("kv_seconds_per_transfer").is_not_null()
        & pl.col("input_len").str.contains(r"^\d+$")  # a range has no one x position
    )
    key, _ = load_axis(measured) if measured.height else ("concurrency", "")
    measured = measured.drop_nulls(key)
    series = series_of(measured)
    loads = sorted(measured[key].unique().to_list())
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (*named, load), rows in measured.group_by(*SERIES_KEYS, key, maintain_order=True):
        rows = rows.with_columns(pl.col("input_len").cast(pl.Int64)).sort("input_len")
        index = series.index(Series(*named))
        look = {
            "color": colors[loads.index(load) % len(colors)],
            "marker": MARKERS[index % len(MARKERS)],
            "linestyle": LINES[index % len(LINES)],
            "label": f"{_kv_name(Series(*named))}, {key} {load}",
        }
        time_ax.plot(rows["input_len"], rows["kv_seconds_per_transfer"] * 1000, **look)
        rate_ax.plot(rows["input_len"], rows["kv_gbyte_per_s"], **look)
    for link, rows in kv_cache.group_by("link", maintain_order=True):
        rows = rows.sort("tokens")
        time_ax.plot(
            rows["tokens"],
            rows["predicted_seconds"] * 1000,
            ":",
            alpha=0.7,
            label=f"predicted, {link[0]}",
        )
    links = measured.drop_nulls("kv_link_gbyte_per_s").unique(
        ["kv_link", "kv_link_gbyte_per_s"], maintain_order=True
    )
    for link in links.iter_rows(named=True):
        rate_ax.axhline(
            link["kv_link_gbyte_per_s"],
            color="black",
            linestyle=":",
            label=f"{link['kv_link']} nominal",
        )
    time_ax.set(title="Time per KV transfer: measured vs predicted", ylabel="ms per transfer")
    rate_ax.set(title="Achieved KV bandwidth against the link", ylabel="GB/s")
    for ax in (time_ax, rate_ax):
        ax.set(xlabel="prompt tokens")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if len(series) <= 2:
        for ax in (time_ax, rate_ax):
            ax.legend(fontsize=7)
        return save(fig, path)
    # Many series at many loads: one legend of both panels' lines, below them.
    found: dict[str, object] = {}
    for ax in (time_ax, rate_ax):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            found.setdefault(label, handle)
    return save_with_legend_below(fig, list(found.values()), list(found), path)


def _kv_name(series: Series) -> str:
    """A disaggregated series as the KV figure names it: its handoff variant ('push'), or
    without its arm where it has a layout or an engine variant ('3P1D (push) [block128]')."""
    if series.layout or series.engine_variant:
        return series.label.removeprefix(f"{series.arm} ")
    return series.variant or "measured"


def kv_cost(fit: pl.DataFrame, path: Path) -> Path:
    """Per run, the measured time per KV transfer against its link's cost model: filled, the
    model fitted on every healthy run; hollow, fitted without the run's setting; crossed out,
    a run found transport-degraded."""
    fig, ax = plt.subplots(figsize=(6.8, 5.6))
    rows = fit.with_columns(arm=pl.lit("disaggregated"))
    looks = series_looks(rows)
    for series, look in looks.items():
        mine = rows.filter(series.rows())
        color, marker = look["color"], look["marker"]
        ax.scatter(
            mine["predicted_s"] * 1000,
            mine["measured_s"] * 1000,
            color=color,
            marker=marker,
            label=_kv_name(series),
        )
        ax.scatter(
            mine["held_out_predicted_s"] * 1000,
            mine["measured_s"] * 1000,
            facecolors="none",
            edgecolors=color,
            marker=marker,
        )
    degraded = rows.filter(pl.col("degraded"))
    if degraded.height:
        ax.scatter(
            degraded["predicted_s"] * 1000,
            degraded["measured_s"] * 1000,
            color="black",
            marker="x",
            s=80,
            label="transport-degraded",
        )
    shown = pl.concat([rows["measured_s"], rows["predicted_s"], rows["held_out_predicted_s"]])
    low, high = shown.drop_nulls().min() * 1000 / 1.5, shown.drop_nulls().max() * 1000 * 1.5
    ax.plot([low, high], [low, high], color="gray", linewidth=1, label="measured = predicted")
    ax.plot(
        [low, high / 3],
        [3 * low, high],
        color="gray",
        linestyle=":",
        linewidth=1,
        label="3x the prediction",
    )
    ax.set(
        xlim=(low, high),
        ylim=(low, high),
        xscale="log",
        yscale="log",
        title="Time per KV transfer: measured against the cost model",
        xlabel="predicted ms per transfer (hollow: fitted without the setting)",
        ylabel="measured ms per transfer",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, path)


TRANSFER = Figure(
    "kv_transfer",
    "KV transfer: time per transfer against prediction, and GB/s against the link",
    lambda inputs, path: kv_transfer(
        inputs.campaign["comparison"], inputs.campaign["kv_cache"], path
    ),
    when=lambda inputs: (
        inputs.campaign["comparison"]["kv_seconds_per_transfer"].drop_nulls().len() > 0
    ),
)
COST = Figure(
    "kv_cost",
    "KV transfer cost model: each run's time per transfer against the link's fitted "
    "fixed + per-descriptor + per-byte cost (hollow: fitted without the run's setting)",
    lambda inputs, path: kv_cost(inputs.campaign["kv_cost_fit"], path),
    when=lambda inputs: inputs.campaign["kv_cost_fit"]["predicted_s"].drop_nulls().len() > 0,
)
