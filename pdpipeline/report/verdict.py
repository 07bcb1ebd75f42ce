"""The verdict: per workload point, which arm wins, by how much, and beyond the spread or not.

Arms are judged against arms on as many GPUs: at the same offered load, one instance batches
more per GPU than two, so single-vs-two-GPU ratios show batching, not architecture. Each handoff
variant of the disaggregated arm is a candidate of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from pdpipeline.report.compare import POINT_KEYS, arm_label
from pdpipeline.report.slo import (
    BASELINE,
    SHAPE_KEYS,
    best_by_tier,
    describe,
    load_label,
    shape_order,
)

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


# The verdict per SLO tier: which setup serves most requests per GPU within the tier (each at its
# best load), and every other setup's goodput per GPU against the baseline on as many devices.
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Ratio:
    """A setup's goodput per GPU within a tier over the baseline's, each at its best load, with
    an interval from bootstrapping their repeats."""

    series: str  # an arm_label
    ratio: float  # 0: it meets the tier at no load
    low: float | None  # None: one side has one repeat, so no run-to-run spread to judge by
    high: float | None

    @property
    def significant(self) -> bool | None:
        """Whether the interval leaves out 1; None without an interval."""
        if self.low is None or self.high is None:
            return None
        return not self.low <= 1 <= self.high

    def text(self) -> str:
        if self.ratio == 0:
            return f"{self.series} meets it at no load"
        interval = "" if self.low is None else f" [{self.low:.2f}, {self.high:.2f}]"
        tag = {True: "", False: " (a tie)", None: " (one repeat: spread unknown)"}
        return f"{self.series} {self.ratio:.2f}x{interval}{tag[self.significant]}"


@dataclass(frozen=True)
class ShapeVerdict:
    """One workload shape at one tier."""

    input_len: str
    output_len: str
    winner: str | None  # None: no setup meets the tier at any load
    goodput_per_gpu: float | None  # the winner's, at its best load
    output_throughput_per_gpu: float | None
    load: str | None  # the winner's best load: 'c=8', '4/s'
    baseline: str | None  # the baseline's label where it was measured at this shape
    baseline_met: bool
    ratios: tuple[Ratio, ...]  # every other candidate against the baseline

    def text(self) -> str:
        shape = f"at {self.input_len}/{self.output_len}"
        if self.winner is None:
            return f"{shape} no setup meets it at any load"
        text = (
            f"{shape}, {self.winner} serves most, {self.goodput_per_gpu:.3g} req/s per GPU "
            f"({self.output_throughput_per_gpu:.0f} output tok/s per GPU, {self.load})"
        )
        if self.baseline is not None and not self.baseline_met:
            return f"{text}; {self.baseline} meets it at no load"
        if self.ratios:
            text += f" — against {self.baseline}: " + ", ".join(r.text() for r in self.ratios)
        return text


@dataclass(frozen=True)
class TierVerdict:
    tier: str
    ttft_ms: float | None
    tpot_ms: float | None
    attainment: float
    shapes: tuple[ShapeVerdict, ...]

    @property
    def met(self) -> bool:
        """Whether any setup meets the tier at some load of some shape."""
        return any(s.winner is not None for s in self.shapes)

    def sentence(self) -> str:
        head = f"{self.tier} ({describe(self.ttft_ms, self.tpot_ms, self.attainment)})"
        if not self.met:
            return f"{head}: no setup meets it at any load measured."
        return f"{head}: {'; '.join(s.text() for s in self.shapes)}."


def tier_verdicts(
    goodput: pl.DataFrame,
    baseline: tuple[str, str | None] = BASELINE,
    confidence: float = CONFIDENCE,
    resamples: int = 2000,
    seed: int = 0,
) -> list[TierVerdict]:
    """One verdict per tier of `goodput` (`slo.goodput_by_tier`'s frame), in its order."""
    rng = np.random.default_rng(seed)
    best = best_by_tier(goodput)
    out = []
    for (tier,), rows in best.group_by(["tier"], maintain_order=True):
        first = rows.row(0, named=True)
        runs = goodput.filter(pl.col("tier") == tier)
        by_shape = sorted(rows.group_by(SHAPE_KEYS), key=lambda g: shape_order(*g[0]))
        shapes = tuple(
            _shape_verdict(shape, runs, baseline, confidence, resamples, rng)
            for _, shape in by_shape
        )
        out.append(
            TierVerdict(
                tier, first["ttft_ms"], first["tpot_ms"], first["attainment_target"], shapes
            )
        )
    return out


def _shape_verdict(
    shape: pl.DataFrame,
    goodput: pl.DataFrame,
    baseline: tuple[str, str | None],
    confidence: float,
    resamples: int,
    rng: np.random.Generator,
) -> ShapeVerdict:
    """`shape`: best_by_tier's rows of one tier and shape; `goodput`: that tier's runs."""
    # Judged among setups on as many devices, as the per-point verdict is.
    fair = shape.filter(pl.col("gpus") == shape["gpus"].max())
    shape = fair if fair.height >= 2 else shape
    rows = {(r["arm"], r["variant"]): r for r in shape.iter_rows(named=True)}
    met = {s: r for s, r in rows.items() if r["goodput_per_gpu"] is not None}
    first = shape.row(0, named=True)
    winner = max(met, key=lambda s: (met[s]["goodput_per_gpu"], s == baseline), default=None)
    top = met.get(winner, {})
    base = met.get(baseline)
    ratios = ()
    if base is not None:
        base_values = _best_repeats(goodput, baseline, first)
        others = sorted((s for s in rows if s != baseline), key=lambda s: (s[0], s[1] or ""))
        ratios = tuple(
            _ratio(
                s,
                met.get(s),
                base,
                _best_repeats(goodput, s, first),
                base_values,
                confidence,
                resamples,
                rng,
            )
            for s in others
        )
    return ShapeVerdict(
        input_len=first["input_len"],
        output_len=first["output_len"],
        winner=winner and arm_label(*winner),
        goodput_per_gpu=top.get("goodput_per_gpu"),
        output_throughput_per_gpu=top.get("output_throughput_per_gpu"),
        load=winner and load_label(top["concurrency"], top["request_rate"]),
        baseline=arm_label(*baseline) if baseline in rows else None,
        baseline_met=base is not None,
        ratios=ratios,
    )


def _best_repeats(goodput: pl.DataFrame, series: tuple[str, str | None], shape: dict) -> np.ndarray:
    """A setup's goodput per GPU in each repeat at its best load of the shape."""
    arm, variant = series
    return (
        goodput.filter(
            pl.col("best")
            & (pl.col("arm") == arm)
            & pl.col("variant").eq_missing(pl.lit(variant, dtype=pl.Utf8))
            & (pl.col("input_len") == shape["input_len"])
            & (pl.col("output_len") == shape["output_len"])
        )["goodput_per_gpu"]
        .drop_nulls()
        .to_numpy()
    )


def _ratio(
    series: tuple[str, str | None],
    row: dict | None,
    base: dict,
    values: np.ndarray,
    base_values: np.ndarray,
    confidence: float,
    resamples: int,
    rng: np.random.Generator,
) -> Ratio:
    label = arm_label(*series)
    if row is None:
        return Ratio(label, 0.0, None, None)
    ratio = row["goodput_per_gpu"] / base["goodput_per_gpu"]
    if len(values) < 2 or len(base_values) < 2:
        return Ratio(label, ratio, None, None)
    # Resampling each side's repeats: the run-to-run spread of both, carried into the ratio.
    ours = rng.choice(values, size=(resamples, len(values))).mean(axis=1)
    theirs = rng.choice(base_values, size=(resamples, len(base_values))).mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ours / theirs, [tail, 100 - tail])
    return Ratio(label, ratio, float(low), float(high))
