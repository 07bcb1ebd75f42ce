"""What every figure of the report shares: a colour family per arm and a shade, marker and line
style per series, panels per workload shape, and saving as PNG (matplotlib, no display).

Frames come as `load.read_campaign` gives them: with the current columns (`with_current_columns`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from pdpipeline.report.formats import shapes
from pdpipeline.report.series import Series, series_of

COLORS = {"single": "#4C72B0", "replicated": "#55A868", "disaggregated": "#C44E52"}
# The series of one arm (layouts, engine variants, handoff variants): shades of its colour, each
# with its own marker and line style.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINES = ("-", "--", "-.", (0, (5, 1, 1, 1, 1, 1)))
# More series than this: one legend for the figure, below its panels, instead of one in each.
PANEL_LEGEND = 6


def shade(color: str, index: int, count: int) -> tuple[float, float, float]:
    """The arm's colour for its first of `count` series; alternately darker and lighter for the
    next, in steps that reach at most half way to black and three quarters to white."""
    rgb = np.array(mcolors.to_rgb(color))
    if index == 0:
        return tuple(rgb)
    darker = index % 2
    steps = (count // 2) if darker else ((count - 1) // 2)  # the darker (lighter) shades
    step = min(0.3, (0.5 if darker else 0.75) / max(steps, 1))
    toward = np.zeros(3) if darker else np.ones(3)
    return tuple(rgb + (toward - rgb) * step * ((index + 1) // 2))


def legend_columns(names: list[str], width: float, fontsize: float) -> int:
    """As many columns as fit across `width` inches (three at most): a column is as wide as
    the longest name and its line."""
    column = max(len(n) for n in names) * 0.55 * fontsize / 72 + 0.7
    return max(1, min(3, len(names), int((width - 0.2) // column)))


def series_looks(frame: pl.DataFrame) -> dict[Series, dict]:
    """Colour, marker and label of each series in the frame, in series order: one colour family
    per arm, a shade, marker and line style per series within it."""
    looks = {}
    every = series_of(frame)
    for series in every:
        index = sum(s.arm == series.arm for s in looks)
        count = sum(s.arm == series.arm for s in every)
        looks[series] = {
            "color": shade(COLORS[series.arm], index, count),
            "marker": MARKERS[index % len(MARKERS)],
            "linestyle": LINES[index % len(LINES)],
            "label": series.label,
        }
    return looks


def load_axis(frame: pl.DataFrame) -> tuple[str, str]:
    """Plot against concurrency where the campaign has it, else against request rate."""
    if frame["concurrency"].drop_nulls().len():
        return "concurrency", "concurrency (requests in flight)"
    return "request_rate", "request rate (req/s)"


def per_shape(frame: pl.DataFrame, key: str) -> list[tuple[str, str, pl.DataFrame]]:
    """(prompt length, output length, rows) for each shape, rows with a value of `key`."""
    return [
        (
            n_in,
            n_out,
            frame.filter(
                (pl.col("input_len") == n_in) & (pl.col("output_len") == n_out)
            ).drop_nulls(key),
        )
        for n_in, n_out in shapes(frame)
    ]


def style_axes(
    ax, title: str, xlabel: str, ylabel: str, log_x: bool = True, legend: bool = True
) -> None:
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if log_x:
        ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend()


@dataclass
class Panels:
    """A figure of one panel per shape (prompt and output length), per row of `axes`."""

    key: str  # the load column on the x axis
    label: str  # its axis label
    looks: dict[Series, dict]
    shapes: list[tuple[str, str, pl.DataFrame]]  # (prompt length, output length, rows)
    fig: Figure
    axes: np.ndarray  # of Axes: [row][shape]

    @property
    def legend(self) -> bool:
        """Whether each panel has a legend of its own (else `save_panels` draws one below)."""
        return len(self.looks) <= PANEL_LEGEND

    def style(self, ax, title: str, xlabel: str, ylabel: str, log_x: bool = True) -> None:
        style_axes(ax, title, xlabel, ylabel, log_x, legend=self.legend)


def panels(frame: pl.DataFrame, title: str, rows: int = 1) -> Panels:
    """The load axis, each series' look and each shape's rows of `frame`, and a figure with a
    column of `rows` panels for each shape."""
    key, label = load_axis(frame)
    shapes = per_shape(frame, key)
    looks = series_looks(frame)
    height = 4.0 if rows == 1 else 7.5
    width = 5.2 * len(shapes)
    if len(looks) > PANEL_LEGEND:
        width = max(width, 9.0)  # the legend below, three series a row, must fit across
    fig, axes = plt.subplots(rows, len(shapes), figsize=(width, height), squeeze=False)
    fig.suptitle(title)
    return Panels(key, label, looks, shapes, fig, axes)


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_panels(p: Panels, path: Path) -> Path:
    """`save`, with one legend below the panels where they have none of their own."""
    if p.legend:
        return save(p.fig, path)
    labels = [look["label"] for look in p.looks.values()]
    return save_with_legend_below(p.fig, line_handles(p.looks), labels, path)


def save_with_legend_below(fig, handles: list, labels: list[str], path: Path) -> Path:
    """`save`, the figure taller by a legend below its panels."""
    columns = legend_columns(labels, fig.get_figwidth(), 8)
    height = fig.get_figheight()
    below = 0.22 * -(-len(labels) // columns) + 0.2  # inches: a line per row of the legend
    fig.set_figheight(height + below)
    fig.legend(handles, labels, loc="lower center", ncols=columns, fontsize=8)
    fig.tight_layout(rect=(0, below / (height + below), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def line_handles(looks: dict[Series, dict]) -> list:
    return [
        plt.Line2D([], [], color=look["color"], marker=look["marker"], linestyle=look["linestyle"])
        for look in looks.values()
    ]
