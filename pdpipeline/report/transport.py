"""What the preflight found (table `launch_servers`), as the report judges it: the caveat when idle
CPU on CPU instances dominates the comparison (the table of each launch's KV path is
report/tables.py's). The preflight (pdpipeline/preflight.py) measures; the verdict is here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from statistics import median

import polars as pl

from pdpipeline.warehouse.rows import LaunchServerRow

# Idle CPU above this share of an instance's devices dominates a comparison on CPU hosts.
DOMINATING_IDLE_SHARE = 0.5


def dominating_idle(rows: Sequence[LaunchServerRow]) -> list[LaunchServerRow]:
    """KV servers on CPU hosts whose idle CPU is a large share of their devices (cores): there,
    the progress thread competes with the model for the instance's own core."""
    return [
        r
        for r in rows
        if r.role != "standalone"
        and r.device_kind == "cpu"
        and r.idle_cpu_cores >= DOMINATING_IDLE_SHARE * max(1, len(json.loads(r.devices)))
    ]


def spin_caveat(servers: pl.DataFrame) -> str | None:
    """The caveat of a campaign whose KV servers on CPU hosts burn at least half of their
    devices (cores) while idle (`dominating_idle`): there the progress thread takes
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
