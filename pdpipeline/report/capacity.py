"""The rate search's answer per tier and shape: the highest request rate per GPU each setup
sustains within the tier (`slo_capacity`), as the report says it."""

from __future__ import annotations

import polars as pl

from pdpipeline.report.formats import limits, shape_order
from pdpipeline.report.series import Series

# How each bound reads next to its rate: bracketed, or only a lower bound, or none found.
BOUND_TEXT = {
    "found": "{rate:.3g}",
    "above_max": "≥ {rate:.3g} (the highest rate searched)",
    "budget_spent": "≥ {rate:.3g} (search budget spent)",
}


def capacity_sentences(capacity: pl.DataFrame) -> list[str]:
    """One sentence per tier and shape: each setup's highest rate per GPU meeting the tier,
    the most first."""
    if capacity.is_empty():
        return []
    sentences = []
    groups = capacity.group_by(["tier", "input_len", "output_len"], maintain_order=True)
    ordered = sorted(groups, key=lambda g: (g[0][0], shape_order(g[0][1], g[0][2])))
    for (tier, input_len, output_len), rows in ordered:
        first = rows.row(0, named=True)
        tier_limits = limits(first["ttft_ms"], first["tpot_ms"], first["attainment_target"])
        rows = rows.sort("max_rate_per_gpu", descending=True, nulls_last=True)
        parts = [_setup_rate(r) for r in rows.iter_rows(named=True)]
        sentences.append(
            f"{tier} ({tier_limits}) at {input_len}/{output_len}, highest request rate per GPU "
            f"meeting it: {'; '.join(parts)}."
        )
    return sentences


def _setup_rate(row: dict) -> str:
    label = Series.of(row).label
    if row["max_rate_per_gpu"] is None:
        return f"{label} none (not even the lowest rate searched)"
    return f"{label} {BOUND_TEXT[row['bound']].format(rate=row['max_rate_per_gpu'])} req/s"
