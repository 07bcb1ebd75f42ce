"""The frontier figure: output tokens/s per GPU against tokens/s per user, each series' front
and the leader of each span."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import polars as pl

from pdpipeline.report.columns import SERIES_KEYS
from pdpipeline.report.figures.figure import Figure, Inputs
from pdpipeline.report.figures.style import (
    legend_columns,
    line_handles,
    load_axis,
    per_shape,
    save,
    series_looks,
)
from pdpipeline.report.formats import load_label
from pdpipeline.report.frontier import frontier as front_of
from pdpipeline.report.frontier import leaders as leaders_of
from pdpipeline.report.series import Series, contenders, series_of


def frontier(front: pl.DataFrame, path: Path, leaders: pl.DataFrame | None = None) -> Path:
    """Output tokens/s per GPU against tokens/s per user, a panel per shape: each series' front
    as a staircase (the most it reaches at that interactivity or more), its dominated points
    faint, each point's load beside it; along the top, which setup leads each span.

    `front` and `leaders` come from `report.frontier` (`frontier`, `leaders`)."""
    if not front.height:
        # No valid run measured a TPOT: an empty panel that says so keeps the page's layout.
        fig, ax = plt.subplots(figsize=(8.0, 3.0))
        ax.text(0.5, 0.5, "no valid run to place on the frontier", ha="center", va="center")
        ax.set_axis_off()
        return save(fig, path)
    key, _ = load_axis(front)
    shapes = per_shape(front, key)
    looks = series_looks(front)
    gpus = {
        Series(*named): n
        for *named, n in front.group_by(SERIES_KEYS).agg(pl.col("gpus").max()).rows()
    }
    competing = set(series_of(contenders(front)))
    handles, names = _frontier_legend(looks, gpus, leaders)
    # Never narrower than the title and the legend below: constrained layout does not widen
    # the figure for them, and one shape's panel alone would clip both. Taller by the legend's
    # rows beyond two, so the panels keep their height.
    width = max(5.6 * len(shapes), 9.0)
    columns = legend_columns(names, width, 9)
    fig, axes = plt.subplots(
        1,
        len(shapes),
        figsize=(width, 5.0 + 0.22 * max(-(-len(names) // columns) - 2, 0)),
        squeeze=False,
        layout="constrained",
    )
    fig.suptitle("Output tokens/s per GPU against tokens/s per user, over the load sweep")
    for ax, (n_in, n_out, shape) in zip(axes[0], shapes, strict=True):
        labels = []
        for series, look in looks.items():
            rows = shape.filter(series.rows()).sort("tok_s_per_user")
            if not rows.height:
                continue
            on = rows.filter(pl.col("on_front"))
            # Single among setups on several GPUs: drawn lighter, as it does not compete for
            # the lead.
            weight = {} if series in competing else {"alpha": 0.55, "linewidth": 1.0}
            # steps-pre holds the span up to each front point at that point's y: the line
            # reads as the most this series reaches at that interactivity or more.
            ax.plot(
                on["tok_s_per_user"],
                on["output_throughput_per_gpu"],
                drawstyle="steps-pre",
                **look,
                **weight,
            )
            off = rows.filter(~pl.col("on_front"))
            ax.scatter(
                off["tok_s_per_user"],
                off["output_throughput_per_gpu"],
                color=look["color"],
                marker=look["marker"],
                alpha=0.25,
            )
            labels += [(row, look["color"]) for row in rows.iter_rows(named=True)]
        ax.set_yscale("log")
        # Plain numbers ('600', '1000'), also on the minor ticks a narrow range labels.
        for axis_formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis_formatter(mticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.6)))
        # Headroom above the highest point for the leader strip.
        top = shape["output_throughput_per_gpu"].max()
        ax.set_ylim(shape["output_throughput_per_gpu"].min() / 1.3, top * 1.6)
        ax.set_xlim(*_padded(shape["tok_s_per_user"]))
        _load_labels(ax, labels)
        if leaders is not None:
            _leader_strip(ax, leaders, n_in, n_out, looks)
        ax.set(
            title=f"prompt {n_in} / output {n_out} tokens",
            xlabel="tokens/s per user (1000 / TPOT p50 ms)",
            ylabel="output tokens/s per GPU (log)",
        )
        ax.grid(alpha=0.3, which="both")
    fig.legend(handles, names, loc="outside lower center", ncols=columns, fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _frontier_legend(
    looks: dict[Series, dict], gpus: dict[Series, int], leaders: pl.DataFrame | None
) -> tuple[list, list[str]]:
    """The frontier's legend: each series with its GPUs, dominated points, the leader strip."""
    handles = line_handles(looks)
    names = [
        f"{look['label']}, {gpus[series]} GPU{'s' if gpus[series] > 1 else ''}"
        for series, look in looks.items()
    ]
    handles.append(plt.Line2D([], [], color="grey", marker="o", linestyle="", alpha=0.25))
    names.append("dominated (off its series' front)")
    if leaders is not None:
        handles.append(plt.Rectangle((0, 0), 1, 1, color="grey", alpha=0.8))
        sizes = leaders["gpus"].drop_nulls().unique()
        names.append(
            f"top strip: leader among setups on {sizes[0]} GPUs"
            if sizes.len() == 1 and leaders["gpus"].null_count() == 0
            else "top strip: the leading setup"
        )
    return handles, names


def _padded(values: pl.Series, share: float = 0.06) -> tuple[float, float]:
    low, high = values.min(), values.max()
    pad = (high - low) * share or abs(high) * share or 1.0
    return low - pad, high + pad


def _load_labels(ax, labels: list[tuple[dict, tuple]]) -> None:
    """Each point's load beside it, once where points of several series with the same load
    sit on top of each other (they would print over one another)."""
    placed: list[tuple[str, np.ndarray]] = []
    for row, color in labels:
        text = load_label(row["concurrency"], row["request_rate"])
        at = ax.transData.transform((row["tok_s_per_user"], row["output_throughput_per_gpu"]))
        if any(t == text and np.hypot(*(at - p)) < 14 for t, p in placed):
            continue
        placed.append((text, at))
        ax.annotate(
            text,
            (row["tok_s_per_user"], row["output_throughput_per_gpu"]),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=7,
            color=color,
            alpha=1.0 if row["on_front"] else 0.4,
        )


def _leader_strip(ax, leaders: pl.DataFrame, n_in: str, n_out: str, looks) -> None:
    """A strip along the top of the panel in the colour of the setup that leads each span of
    tokens/s per user: the frontier sentence, drawn."""
    spans = leaders.filter((pl.col("input_len") == n_in) & (pl.col("output_len") == n_out))
    strip = ax.get_xaxis_transform()  # x in data, y in axes fraction
    for span in spans.iter_rows(named=True):
        look = looks.get(Series.of(span))
        if look is None:
            continue
        start = span["above"] if span["above"] is not None else ax.get_xlim()[0]
        ax.fill_between(
            [start, span["up_to"]], 0.96, 1.0, transform=strip, color=look["color"], alpha=0.8
        )


def _frontier(inputs: Inputs, path: Path) -> Path:
    front = front_of(inputs.campaign["comparison"])
    return frontier(front, path, leaders_of(front))


FIGURE = Figure(
    "frontier",
    "Frontier: output tokens/s per GPU against tokens/s per user over the load sweep; each "
    "setup's front a staircase, dominated points faint, the top strip the leader",
    _frontier,
)
