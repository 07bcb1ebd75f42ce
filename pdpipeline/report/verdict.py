"""The verdict: per workload point and per SLO tier, which series wins, by how much, and beyond
the spread or not.

Single does not compete with setups on several devices: at the same offered load one instance
batches more per device, so its ratios show batching, not architecture. Every other series (each
layout, engine variant and handoff variant) is a candidate of its own, per device; disaggregation
is judged against replication on as many devices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from pdpipeline.report.columns import POINT_KEYS, SHAPE_KEYS
from pdpipeline.report.formats import limits, load_label, shape_order
from pdpipeline.report.series import Series, contenders, has_new_dimensions, rival_devices
from pdpipeline.report.slo import best_by_tier

# A gap counts only when it exceeds this many standard deviations of the difference of the two
# arms' repeat means (their spreads combined).
SPREAD_FACTOR = 2.0


@dataclass(frozen=True)
class PointVerdict:
    point: dict
    throughput_winner: str  # a series label: 'replicated', 'disaggregated (push)'
    throughput_gain: float  # winner's per-GPU throughput over the runner-up's, minus 1
    # None: an arm with one valid repeat has no run-to-run spread to judge the gap against.
    throughput_significant: bool | None
    latency_winner: str  # lowest TTFT p50
    latency_gain: float  # runner-up's TTFT p50 over the winner's, minus 1
    # Per-GPU throughput ratio of each disaggregated series to replicated on as many devices,
    # with the same engine variant.
    disaggregated_vs_replicated: dict[Series, float]

    @property
    def label(self) -> str:
        p = self.point
        load = load_label(p["concurrency"], p["request_rate"])
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
    """One verdict per workload point that has at least two series with valid runs (a
    comparison with the current columns)."""
    out = []
    measured = comparison.filter(pl.col("valid_repeats") > 0)
    for _, group in measured.group_by(POINT_KEYS, maintain_order=True):
        group = contenders(group)
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
                throughput_winner=Series.of(best).label,
                throughput_gain=best["output_throughput_per_gpu"]
                / second["output_throughput_per_gpu"]
                - 1,
                throughput_significant=(
                    None if None in stds else gap > SPREAD_FACTOR * math.hypot(*stds)
                ),
                latency_winner=Series.of(fastest).label,
                latency_gain=next_fastest["ttft_p50_ms"] / fastest["ttft_p50_ms"] - 1,
                disaggregated_vs_replicated={
                    Series.of(r): r["per_gpu_vs_replicated"]
                    for r in disaggregated.iter_rows(named=True)
                },
            )
        )
    return out


def headline(points: list[PointVerdict]) -> str:
    """One line on the question the tool exists for: disaggregation against the fair baseline,
    replication on as many devices with the same engine variant."""
    by_series: dict[Series, list[float]] = {}
    for p in points:
        for series, ratio in p.disaggregated_vs_replicated.items():
            by_series.setdefault(series, []).append(ratio)
    if not by_series:
        return "No disaggregated run with a replicated baseline to judge."
    if len(by_series) == 1:
        (ratios,) = by_series.values()
        return (
            f"Disaggregation beat replication (per-GPU throughput) at {_wins(ratios)} workload "
            f"points; its ratio to replicated ranged {min(ratios):.2f}x to {max(ratios):.2f}x."
        )
    parts = [
        f"{series.label} beat replication at {_wins(ratios)} workload "
        f"points (ratio {min(ratios):.2f}x to {max(ratios):.2f}x)"
        for series, ratios in sorted(by_series.items(), key=lambda kv: kv[0].order)
    ]
    return f"Per-GPU throughput: {'; '.join(parts)}."


def _wins(ratios: list[float]) -> str:
    return f"{sum(r > 1 for r in ratios)} of {len(ratios)}"


# The verdict per SLO tier: which setup serves most requests per GPU within the tier (each at its
# best load), and each disaggregated setup's goodput per GPU against the best replicated one on
# as many devices, each at its own best engine variant (a gain is never a baseline handicap).
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Ratio:
    """A setup's goodput per GPU within a tier over the baseline's, each at its best load, with
    an interval from bootstrapping their repeats."""

    series: str  # a series label
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
        return f"{self.series} {self.figure()}"

    def figure(self) -> str:
        """'1.12x [1.05, 1.20]', tagged as a tie or an unknown spread."""
        interval = "" if self.low is None else f" [{self.low:.2f}, {self.high:.2f}]"
        tag = {True: "", False: " (a tie)", None: " (one repeat: spread unknown)"}
        return f"{self.ratio:.2f}x{interval}{tag[self.significant]}"


@dataclass(frozen=True)
class Rivalry:
    """The setups on one device count against the best replicated setup on as many."""

    baseline: str  # its label
    baseline_met: bool
    ratios: tuple[Ratio, ...]  # each other setup on those devices, at its best engine variant

    def text(self) -> str:
        if not self.baseline_met:
            return f"; {self.baseline} meets it at no load"
        if not self.ratios:
            return ""
        return f" — against {self.baseline}: " + ", ".join(r.text() for r in self.ratios)


@dataclass(frozen=True)
class Disaggregation:
    """The best disaggregated setup against the best replicated one on as many devices."""

    ratio: Ratio
    baseline: str

    def text(self) -> str:
        return (
            f"; best disaggregated, {self.ratio.series}, against {self.baseline} on as many "
            f"devices: {self.ratio.figure()}"
        )


@dataclass(frozen=True)
class ShapeVerdict:
    """One workload shape at one tier."""

    input_len: str
    output_len: str
    winner: str | None  # None: no setup meets the tier at any load
    goodput_per_gpu: float | None  # the winner's, at its best load
    output_throughput_per_gpu: float | None
    load: str | None  # the winner's best load: 'c=8', '4/s'
    rivalries: tuple[Rivalry, ...]  # one per device count with a replicated setup, fewest first
    # Said where the campaign has layouts or engine variants: which of them disaggregation is
    # best in, and against which replicas. None: no disaggregated setup meets the tier.
    disaggregation: Disaggregation | None = None

    @property
    def ratios(self) -> tuple[Ratio, ...]:
        return tuple(r for rivalry in self.rivalries for r in rivalry.ratios)

    def text(self) -> str:
        shape = f"at {self.input_len}/{self.output_len}"
        if self.winner is None:
            return f"{shape} no setup meets it at any load"
        text = (
            f"{shape}, {self.winner} serves most, {self.goodput_per_gpu:.3g} req/s per GPU "
            f"({self.output_throughput_per_gpu:.0f} output tok/s per GPU, {self.load})"
        )
        if self.disaggregation is not None:
            text += self.disaggregation.text()
        return text + "".join(r.text() for r in self.rivalries)


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
        head = f"{self.tier} ({limits(self.ttft_ms, self.tpot_ms, self.attainment)})"
        if not self.met:
            return f"{head}: no setup meets it at any load measured."
        return f"{head}: {'; '.join(s.text() for s in self.shapes)}."


def tier_verdicts(
    goodput: pl.DataFrame,
    confidence: float = CONFIDENCE,
    resamples: int = 2000,
    seed: int = 0,
) -> list[TierVerdict]:
    """One verdict per tier of `goodput` (`slo.goodput_by_tier`'s frame), in its order."""
    rng = np.random.default_rng(seed)
    best = best_by_tier(goodput)
    named = has_new_dimensions(best)
    out = []
    for (tier,), rows in best.group_by(["tier"], maintain_order=True):
        first = rows.row(0, named=True)
        runs = goodput.filter(pl.col("tier") == tier)
        by_shape = sorted(rows.group_by(SHAPE_KEYS), key=lambda g: shape_order(*g[0]))
        shapes = tuple(
            _Judge(shape, runs, confidence, resamples, rng).verdict(named) for _, shape in by_shape
        )
        out.append(
            TierVerdict(
                tier, first["ttft_ms"], first["tpot_ms"], first["attainment_target"], shapes
            )
        )
    return out


class _Judge:
    """One tier and shape: `shape` is best_by_tier's rows of it, `goodput` the tier's runs."""

    def __init__(
        self,
        shape: pl.DataFrame,
        goodput: pl.DataFrame,
        confidence: float,
        resamples: int,
        rng: np.random.Generator,
    ) -> None:
        self.first = shape.row(0, named=True)
        self.rows = {Series.of(r): r for r in contenders(shape).iter_rows(named=True)}
        self.met = {s: r for s, r in self.rows.items() if r["goodput_per_gpu"] is not None}
        self.goodput = goodput
        self.confidence = confidence
        self.resamples = resamples
        self.rng = rng

    def verdict(self, named: bool) -> ShapeVerdict:
        # On equal goodput, replicated keeps the lead: the simpler setup.
        winner = max(
            self.met,
            key=lambda s: (self.met[s]["goodput_per_gpu"], s.arm == "replicated"),
            default=None,
        )
        top = self.met.get(winner, {})
        # Each setup against the replicated ones on as many devices, grouped by that count.
        rivalries: dict[int, list[list[Series]]] = {}
        for engines in self._setups():
            best = self._best(engines)
            devices = rival_devices(best.arm, self.rows[best]["gpus"], self._replicated_devices())
            if devices is not None:
                rivalries.setdefault(devices, []).append(engines)
        return ShapeVerdict(
            input_len=self.first["input_len"],
            output_len=self.first["output_len"],
            winner=winner and winner.label,
            goodput_per_gpu=top.get("goodput_per_gpu"),
            output_throughput_per_gpu=top.get("output_throughput_per_gpu"),
            load=winner and load_label(top["concurrency"], top["request_rate"]),
            rivalries=tuple(self._rivalry(d, rivalries[d]) for d in sorted(rivalries)),
            disaggregation=self._disaggregation() if named else None,
        )

    def _replicated_devices(self) -> set[int]:
        return {r["gpus"] for s, r in self.rows.items() if s.arm == "replicated"}

    def _best(self, among: list[Series]) -> Series:
        """The one serving most; where none meets the tier, the first."""
        met = [s for s in among if s in self.met]
        return max(met, key=lambda s: self.met[s]["goodput_per_gpu"]) if met else among[0]

    def _named(self, engines: list[Series]) -> Series:
        """The best of one setup's engine variants, as a reader is told of it: without an
        engine variant where several are measured and none meets the tier."""
        best = self._best(engines)
        if best in self.met or len(engines) == 1:
            return best
        return best.with_engine(None)

    def _setups(self) -> list[list[Series]]:
        """The engine variants of each setup set against replication: each non-replicated
        (arm, layout, handoff variant), in order."""
        setups: dict[Series, list[Series]] = {}
        for s in sorted(self.rows, key=lambda s: s.order):
            if s.arm != "replicated":
                setups.setdefault(s.with_engine(None), []).append(s)
        return list(setups.values())

    def _baseline(self, devices: int) -> list[Series]:
        """The replicated setups on `devices` devices, best first."""
        found = sorted(
            (s for s, r in self.rows.items() if s.arm == "replicated" and r["gpus"] == devices),
            key=lambda s: s.order,
        )
        best = self._best(found)
        return [best, *(s for s in found if s != best)]

    def _rivalry(self, devices: int, setups: list[list[Series]]) -> Rivalry:
        """`setups` (each its engine variants), each at its best, against the best replicated
        setup on `devices` devices."""
        baselines = self._baseline(devices)
        base = baselines[0]
        if base not in self.met:
            return Rivalry(self._named(baselines).label, False, ())
        ratios = tuple(
            self._ratio(self._best(engines), base, self._named(engines).label) for engines in setups
        )
        return Rivalry(base.label, True, ratios)

    def _disaggregation(self) -> Disaggregation | None:
        """The disaggregated setup serving most, against the best replicated setup on as many
        devices; None where none meets the tier or no replicated one does on its devices."""
        met = [s for s in self.met if s.arm == "disaggregated"]
        if not met:
            return None
        best = max(met, key=lambda s: self.met[s]["goodput_per_gpu"])
        devices = rival_devices(best.arm, self.rows[best]["gpus"], self._replicated_devices())
        if devices is None:
            return None
        base = self._baseline(devices)[0]
        if base not in self.met:
            return None
        return Disaggregation(self._ratio(best, base, best.label), base.label)

    def _ratio(self, series: Series, base: Series, label: str) -> Ratio:
        row = self.met.get(series)
        if row is None:
            return Ratio(label, 0.0, None, None)
        ratio = row["goodput_per_gpu"] / self.met[base]["goodput_per_gpu"]
        values, base_values = self._best_repeats(series), self._best_repeats(base)
        if len(values) < 2 or len(base_values) < 2:
            return Ratio(label, ratio, None, None)
        # Resampling each side's repeats: the run-to-run spread of both, carried into the ratio.
        ours = self.rng.choice(values, size=(self.resamples, len(values))).mean(axis=1)
        theirs = self.rng.choice(base_values, size=(self.resamples, len(base_values))).mean(axis=1)
        tail = (1 - self.confidence) / 2 * 100
        low, high = np.percentile(ours / theirs, [tail, 100 - tail])
        return Ratio(label, ratio, float(low), float(high))

    def _best_repeats(self, series: Series) -> np.ndarray:
        """A setup's goodput per GPU in each repeat at its best load of the shape."""
        return (
            self.goodput.filter(
                pl.col("best")
                & series.rows()
                & (pl.col("input_len") == self.first["input_len"])
                & (pl.col("output_len") == self.first["output_len"])
            )["goodput_per_gpu"]
            .drop_nulls()
            .to_numpy()
        )
