"""The report's figures, as PNG files (matplotlib, no display).

Frames come as `build.load` gives them: with the current columns (`with_current_columns`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from pdpipeline.report.compare import SERIES_KEYS, with_current_columns
from pdpipeline.report.series import Series, contenders, series_of

COLORS = {"single": "#4C72B0", "replicated": "#55A868", "disaggregated": "#C44E52"}
# The series of one arm (layouts, engine variants, handoff variants): shades of its colour, each
# with its own marker and line style.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINES = ("-", "--", "-.", (0, (5, 1, 1, 1, 1, 1)))
# The regime map's series: the winner of a cell and the challenger of the baseline.
ROLES = ("winner", "challenger")
# More series than this: one legend for the figure, below its panels, instead of one in each.
PANEL_LEGEND = 6


def _shade(color: str, index: int, count: int) -> tuple[float, float, float]:
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


def _legend_columns(names: list[str], width: float, fontsize: float) -> int:
    """As many columns as fit across `width` inches (three at most): a column is as wide as
    the longest name and its line."""
    column = max(len(n) for n in names) * 0.55 * fontsize / 72 + 0.7
    return max(1, min(3, len(names), int((width - 0.2) // column)))


def _looks(frame: pl.DataFrame) -> dict[Series, dict]:
    """Colour, marker and label of each series in the frame, in series order: one colour family
    per arm, a shade, marker and line style per series within it."""
    looks = {}
    every = series_of(with_current_columns(frame))
    for series in every:
        index = sum(s.arm == series.arm for s in looks)
        count = sum(s.arm == series.arm for s in every)
        looks[series] = {
            "color": _shade(COLORS[series.arm], index, count),
            "marker": MARKERS[index % len(MARKERS)],
            "linestyle": LINES[index % len(LINES)],
            "label": series.label,
        }
    return looks


def _shapes(frame: pl.DataFrame) -> list[tuple[str, str]]:
    """The (input_len, output_len) pairs of a campaign, in a stable order."""
    pairs = frame.select("input_len", "output_len").unique().rows()
    return sorted(pairs, key=lambda p: (int(p[0].split(":")[0]), int(p[1].split(":")[0])))


def _load_axis(frame: pl.DataFrame) -> tuple[str, str]:
    """Plot against concurrency where the campaign has it, else against request rate."""
    if frame["concurrency"].drop_nulls().len():
        return "concurrency", "concurrency (requests in flight)"
    return "request_rate", "request rate (req/s)"


def _per_shape(frame: pl.DataFrame, key: str) -> list[tuple[str, str, pl.DataFrame]]:
    """(prompt length, output length, rows) for each shape, rows with a value of `key`."""
    return [
        (
            n_in,
            n_out,
            frame.filter(
                (pl.col("input_len") == n_in) & (pl.col("output_len") == n_out)
            ).drop_nulls(key),
        )
        for n_in, n_out in _shapes(frame)
    ]


def _style(
    ax, title: str, xlabel: str, ylabel: str, log_x: bool = True, legend: bool = True
) -> None:
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if log_x:
        ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend()


@dataclass
class _Panels:
    """A figure of one panel per shape (prompt and output length), per row of `axes`."""

    key: str  # the load column on the x axis
    label: str  # its axis label
    looks: dict[Series, dict]
    shapes: list[tuple[str, str, pl.DataFrame]]  # (prompt length, output length, rows)
    fig: Figure
    axes: np.ndarray  # of Axes: [row][shape]

    @property
    def legend(self) -> bool:
        """Whether each panel has a legend of its own (else `_save_panels` draws one below)."""
        return len(self.looks) <= PANEL_LEGEND

    def style(self, ax, title: str, xlabel: str, ylabel: str, log_x: bool = True) -> None:
        _style(ax, title, xlabel, ylabel, log_x, legend=self.legend)


def _panels(frame: pl.DataFrame, title: str, rows: int = 1) -> _Panels:
    """The load axis, each series' look and each shape's rows of `frame`, and a figure with a
    column of `rows` panels for each shape."""
    frame = with_current_columns(frame)
    key, label = _load_axis(frame)
    shapes = _per_shape(frame, key)
    looks = _looks(frame)
    height = 4.0 if rows == 1 else 7.5
    width = 5.2 * len(shapes)
    if len(looks) > PANEL_LEGEND:
        width = max(width, 9.0)  # the legend below, three series a row, must fit across
    fig, axes = plt.subplots(rows, len(shapes), figsize=(width, height), squeeze=False)
    fig.suptitle(title)
    return _Panels(key, label, looks, shapes, fig, axes)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _save_panels(p: _Panels, path: Path) -> Path:
    """`_save`, with one legend below the panels where they have none of their own."""
    if p.legend:
        return _save(p.fig, path)
    labels = [look["label"] for look in p.looks.values()]
    return _save_with_legend_below(p.fig, _handles(p.looks), labels, path)


def _save_with_legend_below(fig, handles: list, labels: list[str], path: Path) -> Path:
    """`_save`, the figure taller by a legend below its panels."""
    columns = _legend_columns(labels, fig.get_figwidth(), 8)
    height = fig.get_figheight()
    below = 0.22 * -(-len(labels) // columns) + 0.2  # inches: a line per row of the legend
    fig.set_figheight(height + below)
    fig.legend(handles, labels, loc="lower center", ncols=columns, fontsize=8)
    fig.tight_layout(rect=(0, below / (height + below), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _handles(looks: dict[Series, dict]) -> list:
    return [
        plt.Line2D([], [], color=look["color"], marker=look["marker"], linestyle=look["linestyle"])
        for look in looks.values()
    ]


def throughput(comparison: pl.DataFrame, path: Path, per_gpu: bool) -> Path:
    """Output tokens/s against load, one line per series, error bars = spread."""
    column = "output_throughput_per_gpu" if per_gpu else "output_throughput"
    p = _panels(comparison, "Output tokens/s per GPU" if per_gpu else "Output tokens/s")
    for ax, (n_in, n_out, shape) in zip(p.axes[0], p.shapes, strict=True):
        for series, look in p.looks.items():
            rows = shape.filter(series.rows()).sort(p.key)
            if rows.height:
                errors = rows["output_throughput_per_gpu_std"].fill_null(0) if per_gpu else None
                ax.errorbar(rows[p.key], rows[column], yerr=errors, capsize=3, **look)
        p.style(ax, f"prompt {n_in} / output {n_out}", p.label, "tokens/s")
    return _save_panels(p, path)


def latency(comparison: pl.DataFrame, path: Path) -> Path:
    """TTFT and TPOT p50 (solid) and p99 (dashed) against load, per series."""
    p = _panels(comparison, "Latency: p50 solid, p99 dashed", rows=2)
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
    return _save_panels(p, path)


def latency_cdfs(requests: pl.DataFrame, path: Path) -> Path:
    """CDFs of TTFT and TPOT per series at each shape's highest load."""
    p = _panels(requests.filter(pl.col("ok")), "Latency distributions at the highest load", 2)
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
    return _save_panels(p, path)


def goodput(comparison: pl.DataFrame, path: Path, slo: str) -> Path:
    """Requests/s meeting every SLO, against load."""
    p = _panels(comparison, f"Goodput ({slo})")
    for ax, (n_in, n_out, shape) in zip(p.axes[0], p.shapes, strict=True):
        for series, look in p.looks.items():
            rows = shape.filter(series.rows()).sort(p.key)
            if rows.height:
                ax.plot(rows[p.key], rows["goodput"], **look)
        p.style(ax, f"prompt {n_in} / output {n_out}", p.label, "requests/s in SLO")
    return _save_panels(p, path)


def kv_transfer(comparison: pl.DataFrame, kv_cache: pl.DataFrame, path: Path) -> Path:
    """Per KV transfer, by prompt length and disaggregated series: time against predictions
    over links, and achieved GB/s against the nominal rate of the link between prefill and
    decode."""
    fig, (time_ax, rate_ax) = plt.subplots(1, 2, figsize=(13.0, 4.8))
    measured = with_current_columns(comparison).filter(
        pl.col("kv_seconds_per_transfer").is_not_null()
        & pl.col("input_len").str.contains(r"^\d+$")  # a range has no one x position
    )
    key, _ = _load_axis(measured) if measured.height else ("concurrency", "")
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
        return _save(fig, path)
    # Many series at many loads: one legend of both panels' lines, below them.
    found: dict[str, object] = {}
    for ax in (time_ax, rate_ax):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            found.setdefault(label, handle)
    return _save_with_legend_below(fig, list(found.values()), list(found), path)


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
    rows = with_current_columns(fit.with_columns(arm=pl.lit("disaggregated")))
    looks = _looks(rows)
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
    return _save(fig, path)


def history(trend: pl.DataFrame, path: Path, regressions: pl.DataFrame | None = None) -> Path:
    """Each series' best per-GPU throughput per campaign over time; regressions marked."""
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    for series, look in _looks(trend).items():
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
    return _save(fig, path)


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
        return _save(fig, path)
    front = with_current_columns(front)
    key, _ = _load_axis(front)
    shapes = _per_shape(front, key)
    looks = _looks(front)
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
    columns = _legend_columns(names, width, 9)
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
    handles = _handles(looks)
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
        text = (
            f"c={row['concurrency']}"
            if row["concurrency"] is not None
            else f"{row['request_rate']:g}/s"
        )
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


def regime_heatmap(regime: pl.DataFrame, path: Path) -> Path:
    """The regime map: a panel per shape, TTFT limit up and TPOT limit across, each cell in the
    colour of the setup serving most requests per GPU within both limits (with that goodput
    written in it), hatched where the interval on its difference from the baseline includes 0,
    grey where no setup meets the cell at any load.

    `regime` is `report.regime.regime_map`'s frame (or the `regime_map` table's rows)."""
    regime = with_current_columns(regime)
    series = pl.concat(
        [regime.select(**{k: f"{role}_{k}" for k in SERIES_KEYS}) for role in ROLES]
    ).drop_nulls("arm")
    looks = _looks(series) if series.height else {}
    shapes = _shapes(regime)
    names = [look["label"] for look in looks.values()]
    names += ["tie: the interval on the difference includes 0", "no setup meets it"]
    # Never narrower than the legend below (constrained layout does not widen for it), and
    # taller by its rows beyond two.
    width = max(5.4 * len(shapes), 9.0)
    columns = _legend_columns(names, width, 9)
    fig, axes = plt.subplots(
        1,
        len(shapes),
        figsize=(width, 5.2 + 0.22 * max(-(-len(names) // columns) - 2, 0)),
        squeeze=False,
        layout="constrained",
    )
    attainment = regime["attainment"][0] if regime.height else 0.9
    fig.suptitle(
        f"Who serves most requests/s per GPU with {attainment:.0%} of requests within both limits"
    )
    none_met = mcolors.to_rgb("#e6e6e6")
    for ax, (n_in, n_out) in zip(axes[0], shapes, strict=True):
        cells = regime.filter((pl.col("input_len") == n_in) & (pl.col("output_len") == n_out))
        ttfts = sorted(cells["ttft_ms"].unique().to_list())
        tpots = sorted(cells["tpot_ms"].unique().to_list())
        image = np.ones((len(ttfts), len(tpots), 3))
        for cell in cells.iter_rows(named=True):
            y, x = ttfts.index(cell["ttft_ms"]), tpots.index(cell["tpot_ms"])
            look = looks.get(Series.of(cell, "winner_")) if cell["winner_arm"] else None
            image[y, x] = look["color"] if look else none_met
            if look is None:
                continue
            ax.text(
                x, y, f"{cell['winner_goodput_per_gpu']:.2g}", ha="center", va="center", fontsize=7
            )
            if cell["tie"]:
                ax.add_patch(
                    plt.Rectangle(
                        (x - 0.5, y - 0.5), 1, 1, fill=False, hatch="///", edgecolor="white", lw=0
                    )
                )
        ax.imshow(image, origin="lower", aspect="auto")
        ax.set_xticks(range(len(tpots)), [_limit(v) for v in tpots], rotation=45)
        ax.set_yticks(range(len(ttfts)), [_limit(v) for v in ttfts])
        ax.set(
            title=f"prompt {n_in} / output {n_out}",
            xlabel="TPOT limit (ms)",
            ylabel="TTFT limit (ms)",
        )
    handles = [plt.Rectangle((0, 0), 1, 1, color=look["color"]) for look in looks.values()]
    handles += [
        plt.Rectangle((0, 0), 1, 1, facecolor="grey", hatch="///", edgecolor="white"),
        plt.Rectangle((0, 0), 1, 1, color=none_met),
    ]
    fig.legend(handles, names, loc="outside lower center", ncols=columns, fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _limit(ms: float) -> str:
    """A grid limit as an axis label: whole milliseconds from 100 up, never in exponent form."""
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.3g}"
