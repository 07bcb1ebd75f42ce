"""What the preflight found (table `launch_servers`), as the report says it: the KV path of each
disaggregated launch, and the caveat when idle CPU on CPU instances dominates the comparison."""

from __future__ import annotations

from statistics import median

import polars as pl

from pdpipeline.preflight import dominating_idle
from pdpipeline.warehouse.rows import LaunchServerRow

PREFLIGHT_TITLE = "### KV transport preflight"


def spin_caveat(servers: pl.DataFrame) -> str | None:
    """The caveat of a campaign whose KV servers on CPU hosts burn at least half of their
    devices (cores) while idle (`preflight.dominating_idle`): there the progress thread takes
    the model's core, so replicas beat the pair by that cost, whatever disaggregation would do.
    None when none does."""
    rows = [LaunchServerRow(**row) for row in servers.iter_rows(named=True)]
    spinning = [r.idle_cpu_cores for r in dominating_idle(rows)]
    if not spinning:
        return None
    standalone = [r.idle_cpu_cores for r in rows if r.role == "standalone"]
    baseline = f"; a standalone server {median(standalone):.2f}" if standalone else ""
    return (
        f"dominated by NIXL's progress thread, not by disaggregation: each disaggregated "
        f"server on these CPU cores burns {median(spinning):.2f} core(s) while idle{baseline} "
        "(measured before the first point), on the cores it shares with its model, so the "
        "pair loses that much before any KV moves."
    )


def caveat_lines(caveats: pl.Series) -> list[str]:
    """The recommendations' caveats (column `caveat`), once each, as sentences."""
    return [
        f"Every comparison with a disaggregated setup here is {c}"
        for c in caveats.drop_nulls().unique(maintain_order=True)
    ]


PREFLIGHT_COLUMNS = {
    "Launch": lambda r: r["launch"],
    "Server": lambda r: f"{r['role']} {r['server']}",
    "KV lanes": lambda r: r["kv_lanes"] or "not reported",
    "Block": lambda r: "" if r["block_size"] is None else str(r["block_size"]),
    "Layout": lambda r: r["kv_layout"] or "?",
    "Layers contiguous": lambda r: {True: "yes", False: "no", None: "?"}[
        r["kv_contiguous_across_layers"]
    ],
    "Descriptors/block": lambda r: _number(r["descriptors_per_block"], "{:.1f}"),
    "NIXL": lambda r: r["nixl_version"] or "?",
    "Idle CPU cores": lambda r: _number(r["idle_cpu_cores"], "{:.2f}"),
}


def preflight_markdown(servers: pl.DataFrame) -> str:
    """The KV servers of every launch as a markdown table; "" when the campaign has none."""
    kv = servers.filter(pl.col("role") != "standalone").sort("launch", "role", "server")
    if not kv.height:
        return ""
    lines = [
        "| " + " | ".join(PREFLIGHT_COLUMNS) + " |",
        "|" + "---|" * len(PREFLIGHT_COLUMNS),
    ]
    for row in kv.iter_rows(named=True):
        lines.append("| " + " | ".join(cell(row) for cell in PREFLIGHT_COLUMNS.values()) + " |")
    return "\n".join(lines)


def _number(value: float | None, form: str) -> str:
    return "" if value is None else form.format(value)
