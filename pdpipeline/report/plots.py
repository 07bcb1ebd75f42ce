"""The report's figures, as PNG files (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl

ARMS = ("single", "replicated", "disaggregated")
COLORS = {"single": "#4C72B0", "replicated": "#55A868", "disaggregated": "#C44E52"}


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


def _style(ax, title: str, xlabel: str, ylabel: str, log_x: bool = True) -> None:
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if log_x:
        ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    ax.legend()


def _grid(count: int, title: str):
    fig, axes = plt.subplots(1, count, figsize=(5.2 * count, 4.0), squeeze=False)
    fig.suptitle(title)
    return fig, axes[0]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput(comparison: pl.DataFrame, path: Path, per_gpu: bool) -> Path:
    """Output tokens/s against load, one line per arm, error bars = spread over repeats."""
    column = "output_throughput_per_gpu" if per_gpu else "output_throughput"
    key, label = _load_axis(comparison)
    shapes = _per_shape(comparison, key)
    fig, axes = _grid(len(shapes), "Output tokens/s per GPU" if per_gpu else "Output tokens/s")
    for ax, (n_in, n_out, shape) in zip(axes, shapes, strict=True):
        for arm in ARMS:
            rows = shape.filter(pl.col("arm") == arm).sort(key)
            if rows.height:
                errors = rows["output_throughput_per_gpu_std"].fill_null(0) if per_gpu else None
                ax.errorbar(
                    rows[key],
                    rows[column],
                    yerr=errors,
                    marker="o",
                    capsize=3,
                    color=COLORS[arm],
                    label=arm,
                )
        _style(ax, f"prompt {n_in} / output {n_out}", label, "tokens/s")
    return _save(fig, path)


def latency(comparison: pl.DataFrame, path: Path) -> Path:
    """TTFT and TPOT p50 (solid) and p99 (dashed) against load, per arm."""
    key, label = _load_axis(comparison)
    shapes = _per_shape(comparison, key)
    fig, axes = plt.subplots(2, len(shapes), figsize=(5.2 * len(shapes), 7.5), squeeze=False)
    fig.suptitle("Latency: p50 solid, p99 dashed")
    for col, (n_in, n_out, shape) in enumerate(shapes):
        for row, metric in enumerate(("ttft", "tpot")):
            ax = axes[row][col]
            for arm in ARMS:
                rows = shape.filter(pl.col("arm") == arm).sort(key)
                if rows.height:
                    ax.plot(rows[key], rows[f"{metric}_p50_ms"], "-o", color=COLORS[arm], label=arm)
                    ax.plot(rows[key], rows[f"{metric}_p99_ms"], "--", color=COLORS[arm])
            _style(ax, f"{metric.upper()}, prompt {n_in} / output {n_out}", label, "ms")
    return _save(fig, path)


def latency_cdfs(requests: pl.DataFrame, path: Path) -> Path:
    """CDFs of TTFT and TPOT per arm at each shape's highest load."""
    key, _ = _load_axis(requests)
    shapes = _per_shape(requests.filter(pl.col("ok")), key)
    fig, axes = plt.subplots(2, len(shapes), figsize=(5.2 * len(shapes), 7.5), squeeze=False)
    fig.suptitle("Latency distributions at the highest load")
    for col, (n_in, n_out, shape) in enumerate(shapes):
        top = shape[key].max()
        shape = shape.filter(pl.col(key) == top)
        for row, metric in enumerate(("ttft_s", "tpot_s")):
            ax = axes[row][col]
            for arm in ARMS:
                values = np.sort(shape.filter(pl.col("arm") == arm)[metric].drop_nulls()) * 1000
                if len(values):
                    ax.plot(
                        values,
                        np.arange(1, len(values) + 1) / len(values),
                        color=COLORS[arm],
                        label=arm,
                    )
            title = f"{metric[:4].upper()} CDF, {n_in}/{n_out} at {key} {top}"
            _style(ax, title, "ms", "fraction of requests", log_x=False)
    return _save(fig, path)


def goodput(comparison: pl.DataFrame, path: Path, slo: str) -> Path:
    """Requests/s meeting every SLO, against load."""
    key, label = _load_axis(comparison)
    shapes = _per_shape(comparison, key)
    fig, axes = _grid(len(shapes), f"Goodput ({slo})")
    for ax, (n_in, n_out, shape) in zip(axes, shapes, strict=True):
        for arm in ARMS:
            rows = shape.filter(pl.col("arm") == arm).sort(key)
            if rows.height:
                ax.plot(rows[key], rows["goodput"], "-o", color=COLORS[arm], label=arm)
        _style(ax, f"prompt {n_in} / output {n_out}", label, "requests/s in SLO")
    return _save(fig, path)


def kv_transfer(comparison: pl.DataFrame, kv_cache: pl.DataFrame, path: Path) -> Path:
    """Measured time per KV transfer by prompt length, against predictions over links."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    measured = comparison.filter(pl.col("kv_seconds_per_transfer").is_not_null())
    key, _ = _load_axis(measured) if measured.height else ("concurrency", "")
    for load, rows in measured.group_by(key, maintain_order=True):
        rows = rows.with_columns(pl.col("input_len").cast(pl.Int64)).sort("input_len")
        ax.plot(
            rows["input_len"],
            rows["kv_seconds_per_transfer"] * 1000,
            "o-",
            label=f"measured, {key} {load[0]}",
        )
    for link, rows in kv_cache.group_by("link", maintain_order=True):
        rows = rows.sort("tokens")
        ax.plot(
            rows["tokens"],
            rows["predicted_seconds"] * 1000,
            ":",
            alpha=0.7,
            label=f"predicted, {link[0]}",
        )
    ax.set(
        title="KV transfer per request: measured vs predicted",
        xlabel="prompt tokens",
        ylabel="ms per transfer",
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def history(trend: pl.DataFrame, path: Path, regressions: pl.DataFrame | None = None) -> Path:
    """Each arm's best per-GPU throughput per campaign over time; regressions marked."""
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    for arm in ARMS:
        rows = trend.filter(pl.col("arm") == arm).sort("started_at")
        if rows.height:
            ax.plot(
                rows["started_at"],
                rows["output_throughput_per_gpu"],
                "-o",
                color=COLORS[arm],
                label=arm,
            )
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
