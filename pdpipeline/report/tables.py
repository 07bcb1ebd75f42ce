"""The report's tables as data: per table, its columns (a header and the cell of a row), built
once from a frame and rendered alike by the markdown summary and the HTML page.

A new column of a table is one line in its column list."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import polars as pl

from pdpipeline.report.breakdown import PARTS
from pdpipeline.report.columns import POINT_KEYS
from pdpipeline.report.formats import (
    MISSING,
    by_shape,
    fixed,
    load_label,
    num,
    pair,
    rate,
    spread,
)
from pdpipeline.report.kvcost import setting_residuals
from pdpipeline.report.series import Series

# How a column reads on the page: figures right-aligned; text left-aligned and wrapping; a
# setup's name left-aligned on one line; a point's shape and load once for its rows.
Kind = Literal["number", "text", "setup", "point"]


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[Mapping], str]
    kind: Kind = "number"


@dataclass(frozen=True)
class Table:
    """Rows of cells under `columns`. Where `spans` is given, the table's leading "point"
    columns hold one value per span of that many rows (the page writes it once for them)."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...]
    id: str | None = None
    spans: tuple[int, ...] = ()

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]


def table(
    columns: Sequence[Column], rows: Sequence[Mapping], id: str | None = None, spans=()
) -> Table:
    cells = tuple(tuple(c.cell(r) for c in columns) for r in rows)
    return Table(tuple(columns), cells, id, tuple(spans))


def _label(row: Mapping) -> str:
    return Series.of(row).label


def _load(row: Mapping) -> str:
    return load_label(row["concurrency"], row["request_rate"])


# The summary's comparison: throughput and latency per point and series, totals with them.
SUMMARY_COLUMNS = (
    Column("input", lambda r: r["input_len"], "text"),
    Column("output", lambda r: r["output_len"], "text"),
    Column("load", _load, "text"),
    Column("arm", _label, "setup"),
    Column("GPUs", lambda r: str(r["gpus"])),
    Column("valid", lambda r: str(r["valid_repeats"])),
    Column("out tok/s", lambda r: fixed(r["output_throughput"])),
    Column(
        "per GPU (±sd)",
        lambda r: (
            f"{fixed(r['output_throughput_per_gpu'])} ±{fixed(r['output_throughput_per_gpu_std'])}"
        ),
    ),
    Column("vs single", lambda r: fixed(r["per_gpu_vs_single"], "{:.2f}x")),
    Column("vs replicated", lambda r: fixed(r["per_gpu_vs_replicated"], "{:.2f}x")),
    Column("TTFT p50/p99 ms", lambda r: f"{fixed(r['ttft_p50_ms'])} / {fixed(r['ttft_p99_ms'])}"),
    Column(
        "TPOT p50/p99 ms",
        lambda r: f"{fixed(r['tpot_p50_ms'], '{:.2f}')} / {fixed(r['tpot_p99_ms'], '{:.2f}')}",
    ),
    Column("goodput req/s", lambda r: fixed(r["goodput"], "{:.2f}")),
)
# The summary's KV transfer table, of the rows that moved KV.
SUMMARY_KV_COLUMNS = (
    Column("input", lambda r: r["input_len"], "text"),
    Column("load", _load, "text"),
    Column("arm", _label, "setup"),
    Column(
        "KV bytes/transfer (predicted)",
        lambda r: (
            f"{fixed(r['kv_bytes_per_transfer'], '{:,.0f}')} "
            f"({fixed(r['kv_predicted_bytes'], '{:,.0f}')})"
        ),
    ),
    Column(
        "ms/transfer",
        lambda r: fixed(
            r["kv_seconds_per_transfer"] and r["kv_seconds_per_transfer"] * 1000, "{:.2f}"
        ),
    ),
    Column("GB/s", lambda r: fixed(r["kv_gbyte_per_s"], "{:.3f}")),
    Column(
        "link",
        lambda r: (
            (r["kv_link"] and f"{r['kv_link']}, {r['kv_link_gbyte_per_s']:.1f} GB/s") or MISSING
        ),
        "text",
    ),
    Column("of link", lambda r: fixed(r["kv_link_fraction"], "{:.2%}")),
)


def summary_comparison(comparison: pl.DataFrame) -> list[Table]:
    """The comparison (with the current columns) as the summary's tables: throughput and
    latency per point, then KV transfer where KV moved."""
    tables = [table(SUMMARY_COLUMNS, comparison.rows(named=True))]
    kv = comparison.filter(pl.col("kv_bytes_per_transfer").is_not_null())
    if kv.height:
        tables.append(table(SUMMARY_KV_COLUMNS, kv.rows(named=True)))
    return tables


# The page's comparison: ratios and per-GPU figures only (totals are per GPU times GPUs, and
# the summary has them), units in the headers.
PAGE_COLUMNS = (
    Column("Prompt / output tokens", lambda r: f"{r['input_len']} / {r['output_len']}", "point"),
    Column("Load", lambda r: load_label(r["concurrency"], r["request_rate"], " req/s"), "point"),
    Column("Setup", _label, "setup"),
    Column("GPUs", lambda r: str(r["gpus"])),
    Column("Valid runs", lambda r: str(r["valid_repeats"])),
    Column(
        "Output tok/s per GPU (± sd)",
        lambda r: spread(r["output_throughput_per_gpu"], r["output_throughput_per_gpu_std"]),
    ),
    Column("vs replicated", lambda r: num(r["per_gpu_vs_replicated"], "x")),
    Column("TTFT p50 / p99 (ms)", lambda r: pair(r["ttft_p50_ms"], r["ttft_p99_ms"])),
    Column("TPOT p50 / p99 (ms)", lambda r: pair(r["tpot_p50_ms"], r["tpot_p99_ms"])),
    Column("Goodput (req/s in SLO)", lambda r: num(r["goodput"])),
    Column(
        "KV MB per transfer (predicted)",
        lambda r: (
            MISSING
            if r["kv_bytes_per_transfer"] is None
            else f"{num(r['kv_bytes_per_transfer'] / 1e6)} "
            f"({num(r['kv_predicted_bytes'] and r['kv_predicted_bytes'] / 1e6)})"
        ),
    ),
    Column(
        "KV ms per transfer",
        lambda r: num(r["kv_seconds_per_transfer"] and r["kv_seconds_per_transfer"] * 1000),
    ),
    Column(
        "KV GB/s (of link)",
        lambda r: (
            MISSING
            if r["kv_gbyte_per_s"] is None
            else num(r["kv_gbyte_per_s"])
            + (f" ({r['kv_link_fraction']:.1%})" if r["kv_link_fraction"] is not None else "")
        ),
    ),
)


def page_comparison(comparison: pl.DataFrame) -> Table:
    """One row per point and series, shortest shapes first; the point's shape and load once,
    spanning its rows."""
    rows, spans = [], []
    ordered = comparison.sort(by_shape(), maintain_order=True)
    for _, group in ordered.group_by(POINT_KEYS, maintain_order=True):
        rows += group.rows(named=True)
        spans.append(group.height)
    return table(PAGE_COLUMNS, rows, "comparison", spans)


# The cost model's per-setting table: header and the cell of a `setting_residuals` row.
RESIDUAL_COLUMNS = (
    Column("Setting", lambda r: r["setting"], "text"),
    Column("Block", lambda r: str(r["block_size"])),
    Column("Runs", lambda r: str(r["runs"])),
    Column("Measured ms per transfer (median)", lambda r: num(r["measured_ms"])),
    Column("Model ms", lambda r: num(r["predicted_ms"])),
    Column("Residual", lambda r: MISSING if r["residual"] is None else f"{r['residual']:+.0%}"),
    Column("Held-out ms", lambda r: num(r["held_out_ms"])),
    Column("GB/s", lambda r: num(r["gbyte_per_s"])),
    Column("Degraded runs", lambda r: str(r["degraded_runs"])),
)


def residuals(fit: pl.DataFrame) -> Table:
    """The KV cost model per setting: medians over its runs."""
    return table(RESIDUAL_COLUMNS, setting_residuals(fit).rows(named=True), "kv-cost-table")


def _ms(value: float | None) -> str:
    return fixed(value, missing="")


BREAKDOWN_COLUMNS = (
    Column(
        "point",
        lambda r: f"{r['input_len']}/{r['output_len']} {_load(r)}",
        "text",
    ),
    Column("setup", lambda r: Series.of({**r, "arm": "disaggregated"}).label, "text"),
    *(Column(f"{header} ms", lambda r, c=column: _ms(r[c])) for column, header in PARTS),
    Column("handoff beyond KV ms", lambda r: _ms(r["beyond_kv"])),
)


def breakdown(per_setup: pl.DataFrame) -> Table | None:
    """`breakdown.per_setup`'s frame with human headers, times in ms; None without rows."""
    return table(BREAKDOWN_COLUMNS, per_setup.rows(named=True)) if per_setup.height else None


PREFLIGHT_COLUMNS = (
    Column("Launch", lambda r: r["launch"], "text"),
    Column("Server", lambda r: f"{r['role']} {r['server']}", "text"),
    Column("KV lanes", lambda r: r["kv_lanes"] or "not reported", "text"),
    Column("Block", lambda r: "" if r["block_size"] is None else str(r["block_size"])),
    Column("Layout", lambda r: r["kv_layout"] or "?"),
    Column(
        "Layers contiguous",
        lambda r: {True: "yes", False: "no", None: "?"}[r["kv_contiguous_across_layers"]],
    ),
    Column("Descriptors/block", lambda r: fixed(r["descriptors_per_block"], "{:.1f}", missing="")),
    Column("NIXL", lambda r: r["nixl_version"] or "?"),
    Column("Idle CPU cores", lambda r: fixed(r["idle_cpu_cores"], "{:.2f}", missing="")),
)


def preflight(servers: pl.DataFrame) -> Table | None:
    """The KV servers of every launch (table `launch_servers`); None where it has none."""
    if not servers.height:
        return None
    kv = servers.filter(pl.col("role") != "standalone").sort("launch", "role", "server")
    return table(PREFLIGHT_COLUMNS, kv.rows(named=True)) if kv.height else None


def parsed(value):
    """A JSON column as stored (text) or as read back (already a list or a dict)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _gpus(row: Mapping) -> str:
    """The GPUs nvidia-smi listed, counted by model."""
    listed = parsed(row.get("gpus")) or []
    if not isinstance(listed, list) or not listed:
        return str(row.get("gpu_count") or MISSING)
    names: dict[str, int] = {}
    for gpu in listed:
        name = gpu.get("name", "?") if isinstance(gpu, dict) else str(gpu)
        names[name] = names.get(name, 0) + 1
    return ", ".join(f"{n} × {name}" for name, n in names.items())


def _versions(row: Mapping) -> str:
    """'python 3.12.3, vllm 0.24.0, nixl 1.5.1': the packages found, the missing left out."""
    found = parsed(row.get("versions")) or {}
    if not isinstance(found, dict):
        return str(found)
    return ", ".join(f"{name} {v}" for name, v in found.items() if v) or MISSING


HOST_COLUMNS = (
    Column(
        "Host",
        lambda r: f"{r['host']} ({r['hostname']})" if r.get("hostname") else r["host"],
        "text",
    ),
    Column("CPU", lambda r: f"{r.get('cpu_model') or '?'} × {r.get('cpu_count') or '?'}", "text"),
    Column("Memory (GB)", lambda r: num(r["memory_bytes"] and r["memory_bytes"] / 1e9)),
    Column("GPUs", _gpus, "text"),
    Column("Network (Gbit/s)", lambda r: rate(r.get("link_gbit_per_s"))),
    Column("NVLink (Gbit/s)", lambda r: rate(r.get("nvlink_gbit_per_s"))),
    Column("Versions", _versions, "text"),
    Column(
        "Model",
        lambda r: (
            f"{r.get('model_dir') or MISSING}" + ("" if r.get("model_present") else " (missing)")
        ),
        "text",
    ),
)


def hosts(frame: pl.DataFrame) -> Table:
    """What hardware_check found on each host."""
    return table(HOST_COLUMNS, frame.rows(named=True), "hosts")
