"""The verdict: per workload point, which arm wins, by how much, and beyond the spread or not.

Arms are judged against arms on as many GPUs: at the same offered load, one instance batches
more per GPU than two, so single-vs-two-GPU ratios show batching, not architecture. Each handoff
variant of the disaggregated arm is a candidate of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from pdpipeline.report.compare import POINT_KEYS, arm_label

# A gap counts only when it exceeds this many standard deviations of the difference of the two
# arms' repeat means (their spreads combined).
SPREAD_FACTOR = 2.0


@dataclass(frozen=True)
class PointVerdict:
    point: dict
    throughput_winner: str  # an arm_label: 'replicated', 'disaggregated (push)'
    throughput_gain: float  # winner's per-GPU throughput over the runner-up's, minus 1
    # None: an arm with one valid repeat has no run-to-run spread to judge the gap against.
    throughput_significant: bool | None
    latency_winner: str  # lowest TTFT p50
    latency_gain: float  # runner-up's TTFT p50 over the winner's, minus 1
    # Per-GPU throughput ratio of each disaggregated variant (None: a campaign without variants).
    disaggregated_vs_replicated: dict[str | None, float]

    @property
    def label(self) -> str:
        p = self.point
        load = f"c={p['concurrency']}" if p["concurrency"] is not None else f"{p['request_rate']}/s"
        return f"{p['input_len']}/{p['output_len']} {load}"

    def sentence(self) -> str:
        significance = {
            True: "beyond the run-to-run spread",
            False: "within the run-to-run spread",
            None: "one repeat: no run-to-run spread to judge it against",
        }[self.throughput_significant]
        return (
            f"{self.label}: {self.throughput_winner} leads output tokens/s per GPU by "
            f"{self.throughput_gain:.0%} ({significance}); {self.latency_winner} has the lowest "
            f"TTFT p50 (the next arm's is {self.latency_gain:.0%} higher)."
        )


def verdicts(comparison: pl.DataFrame) -> list[PointVerdict]:
    """One verdict per workload point that has at least two arms with valid runs (a comparison
    with the current columns)."""
    out = []
    measured = comparison.filter(pl.col("valid_repeats") > 0)
    for _, group in measured.group_by(POINT_KEYS, maintain_order=True):
        fair = group.filter(pl.col("gpus") == group["gpus"].max())
        group = fair if fair.height >= 2 else group
        if group.height < 2:
            continue
        by_throughput = group.sort("output_throughput_per_gpu", descending=True)
        best, second = by_throughput.row(0, named=True), by_throughput.row(1, named=True)
        stds = [best["output_throughput_per_gpu_std"], second["output_throughput_per_gpu_std"]]
        gap = best["output_throughput_per_gpu"] - second["output_throughput_per_gpu"]
        by_latency = group.sort("ttft_p50_ms")
        fastest, next_fastest = by_latency.row(0, named=True), by_latency.row(1, named=True)
        disaggregated = group.filter(
            (pl.col("arm") == "disaggregated") & pl.col("per_gpu_vs_replicated").is_not_null()
        )
        out.append(
            PointVerdict(
                point={k: best[k] for k in POINT_KEYS},
                throughput_winner=arm_label(best["arm"], best["variant"]),
                throughput_gain=best["output_throughput_per_gpu"]
                / second["output_throughput_per_gpu"]
                - 1,
                throughput_significant=(
                    None if None in stds else gap > SPREAD_FACTOR * math.hypot(*stds)
                ),
                latency_winner=arm_label(fastest["arm"], fastest["variant"]),
                latency_gain=next_fastest["ttft_p50_ms"] / fastest["ttft_p50_ms"] - 1,
                disaggregated_vs_replicated=dict(
                    disaggregated.select("variant", "per_gpu_vs_replicated").iter_rows()
                ),
            )
        )
    return out


def headline(points: list[PointVerdict]) -> str:
    """One line on the question the tool exists for: disaggregation against the fair baseline."""
    by_variant: dict[str | None, list[float]] = {}
    for p in points:
        for variant, ratio in p.disaggregated_vs_replicated.items():
            by_variant.setdefault(variant, []).append(ratio)
    if not by_variant:
        return "No disaggregated run with a replicated baseline to judge."
    if len(by_variant) == 1:
        (ratios,) = by_variant.values()
        return (
            f"Disaggregation beat replication (per-GPU throughput) at {_wins(ratios)} workload "
            f"points; its ratio to replicated ranged {min(ratios):.2f}x to {max(ratios):.2f}x."
        )
    parts = [
        f"{arm_label('disaggregated', variant)} beat replication at {_wins(ratios)} workload "
        f"points (ratio {min(ratios):.2f}x to {max(ratios):.2f}x)"
        for variant, ratios in sorted(by_variant.items(), key=lambda kv: kv[0] or "")
    ]
    return f"Per-GPU throughput: {'; '.join(parts)}."


def _wins(ratios: list[float]) -> str:
    return f"{sum(r > 1 for r in ratios)} of {len(ratios)}"
