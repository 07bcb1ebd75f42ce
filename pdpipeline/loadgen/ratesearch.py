"""The most requests per second a setup sustains within an SLO tier (DistServe's goodput capacity).

People ask "at my latency target, how many requests per second does each setup sustain?". A
sweep of fixed open-loop rates only brackets the answer between the last rate that met the tier
and the first that did not, as coarse as the sweep's grid. The search climbs a geometric ladder
of rates to the first failure, then bisects between the last pass and the first fail until the
bracket is narrow enough or its budget of measurements is spent: each measurement is a full run
against a server, so the budget, not the arithmetic, is what costs.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pdpipeline.loadgen.client import RequestRecord
from pdpipeline.loadgen.stats import meets
from pdpipeline.loadgen.window import Window, started_at
from pdpipeline.profile.slo import SloTier

# The attainment of a tier at an open-loop rate (requests/s): None when no request counted.
Measure = Callable[[float], Awaitable[float | None]]
# found: bracketed between `max_rate` and `first_failing`; below_min: even the lowest rate
# failed; above_max: the highest rate passed; budget_spent: the budget ran out on the ladder,
# before any rate failed or the highest was reached, so the capacity is only "at least".
Bound = Literal["found", "below_min", "above_max", "budget_spent"]
# A rate recomputed by another search (or read back from storage) may differ in its last bits.
_SAME_RATE = 1e-9


def attainment(
    records: Iterable[RequestRecord], window: Window | None, tier: SloTier
) -> float | None:
    """The share of the requests started inside `window` (every request without one) that meet
    `tier`; None when no request counts."""
    counted = [r for r in records if window is None or window.holds(started_at(r))]
    if not counted:
        return None
    return sum(meets(r, tier) for r in counted) / len(counted)


@dataclass(frozen=True)
class Probe:
    rate: float
    attainment: float | None
    met: bool
    # Answered from `known` rather than measured by this search.
    reused: bool = False


@dataclass(frozen=True)
class Capacity:
    """What a search found: the capacity lies in [`max_rate`, `first_failing`)."""

    max_rate: float | None
    first_failing: float | None
    probes: tuple[Probe, ...]
    bound: Bound

    @property
    def measurements(self) -> int:
        return sum(not p.reused for p in self.probes)


async def search_capacity(
    measure: Measure,
    target: float,
    min_rate: float,
    max_rate: float,
    steps: int,
    growth: float = 2.0,
    tolerance: float = 0.1,
    known: dict[float, float | None] | None = None,
) -> Capacity:
    """The highest rate in [`min_rate`, `max_rate`] whose attainment reaches `target`, within a
    relative `tolerance`, from at most `steps` calls of `measure`.

    `known` maps rates already measured to their attainment at this tier's limits: those are
    read instead of measured (free of the budget), and every new measurement is added to it."""
    _check(target, min_rate, max_rate, steps, growth, tolerance)
    search = _Search(measure, target, steps, known if known is not None else {})
    await search.climb(min_rate, max_rate, growth)
    await search.bisect(tolerance)
    return search.capacity(max_rate)


@dataclass(frozen=True)
class Measured:
    """One run at a rate: its records and its steady window (None: every record counts)."""

    records: Sequence[RequestRecord]
    window: Window | None


def tier_measure(
    run: Callable[[float], Awaitable[Measured]], runs: dict[float, Measured], tier: SloTier
) -> Measure:
    """`tier`'s attainment from `run`, keeping every run in `runs` so the search of another
    tier on the same server reads it (through `known_attainments`) instead of running again.

    Attainments are per tier: a `known` dict filled by one tier's search holds that tier's
    attainments, wrong for a tier with other limits; the runs themselves answer every tier."""

    async def measure(rate: float) -> float | None:
        measured = runs[rate] = await run(rate)
        return attainment(measured.records, measured.window, tier)

    return measure


def known_attainments(runs: Mapping[float, Measured], tier: SloTier) -> dict[float, float | None]:
    """The `known` of a search at `tier`, from the runs other searches made."""
    return {rate: attainment(m.records, m.window, tier) for rate, m in runs.items()}


def _check(
    target: float, min_rate: float, max_rate: float, steps: int, growth: float, tolerance: float
) -> None:
    if not 0 < target <= 1:
        raise ValueError(f"target must be in (0, 1], got {target}")
    if not 0 < min_rate:
        raise ValueError(f"min_rate must be above 0, got {min_rate}")
    if not min_rate <= max_rate:
        raise ValueError(f"max_rate must be at least min_rate ({min_rate}), got {max_rate}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not growth > 1:
        raise ValueError(f"growth must be above 1, got {growth}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be at least 0, got {tolerance}")


class _Search:
    """The probes of one search, the budget left and the bracket they give."""

    def __init__(
        self, measure: Measure, target: float, steps: int, known: dict[float, float | None]
    ) -> None:
        self.measure = measure
        self.target = target
        self.steps = steps
        self.known = known
        self.calls = 0
        self.probes: list[Probe] = []

    async def climb(self, min_rate: float, max_rate: float, growth: float) -> None:
        """Rungs `min_rate` * `growth`^k, then `max_rate`, up to the first that fails."""
        rate = min_rate
        while True:
            probe = await self.probe(rate)
            if probe is None or not probe.met or rate >= max_rate:
                return
            rate = min(rate * growth, max_rate)

    async def bisect(self, tolerance: float) -> None:
        while True:
            lo, hi = self.bracket()
            if lo is None or hi is None or hi / lo - 1 <= tolerance:
                return
            rate = self.next_rate(lo, hi)
            if rate is None or await self.probe(rate) is None:
                return

    def bracket(self) -> tuple[float | None, float | None]:
        """The lowest failing rate and the highest passing rate below it.

        Results need not be monotone (a run is noisy): a rate may pass above one that failed.
        The capacity is the largest measured passing rate below the first failure, and every
        later probe lies between the two, so a pass above a failure never widens the bracket."""
        hi = min((p.rate for p in self.probes if not p.met), default=None)
        lo = max(
            (p.rate for p in self.probes if p.met and (hi is None or p.rate < hi)), default=None
        )
        return lo, hi

    def next_rate(self, lo: float, hi: float) -> float | None:
        """The geometric middle, or the known rate inside the bracket nearest it (free to
        read); None when the floats between have run out."""
        middle = math.sqrt(lo * hi)
        inside = [r for r in self.known if lo < r < hi and not _near(r, lo) and not _near(r, hi)]
        if inside:
            return min(inside, key=lambda r: abs(math.log(r / middle)))
        return middle if lo < middle < hi else None

    async def probe(self, rate: float) -> Probe | None:
        """The probe at `rate`, read from `known` or measured; None when it would need a
        measurement and the budget is spent."""
        cached = _lookup(self.known, rate)
        if cached is not None:
            rate, value = cached
            reused = True
        elif self.calls >= self.steps:
            return None
        else:
            self.calls += 1
            value = self.known[rate] = await self.measure(rate)
            reused = False
        probe = Probe(rate, value, value is not None and value >= self.target, reused)
        self.probes.append(probe)
        return probe

    def capacity(self, max_rate: float) -> Capacity:
        lo, hi = self.bracket()
        bound: Bound
        if lo is None:
            bound = "below_min"
        elif hi is not None:
            bound = "found"
        elif lo >= max_rate or _near(lo, max_rate):
            bound = "above_max"
        else:
            bound = "budget_spent"
        return Capacity(lo, hi, tuple(self.probes), bound)


def _near(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_SAME_RATE)


def _lookup(known: Mapping[float, float | None], rate: float) -> tuple[float, float | None] | None:
    """The known rate equal to `rate` but for rounding, with its attainment."""
    if rate in known:
        return rate, known[rate]
    return next(((r, v) for r, v in known.items() if _near(r, rate)), None)
