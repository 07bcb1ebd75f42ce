"""Rate sweeps on one launch: the matrix's open-loop rates stop at saturation, and the rate
search finds, per shape and SLO tier, the highest rate that meets the tier."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from pdpipeline.loadgen.bench import BenchResult
from pdpipeline.loadgen.matrix import Point, RateSearchPlan
from pdpipeline.loadgen.ratesearch import (
    Capacity,
    Measured,
    known_attainments,
    search_capacity,
    tier_measure,
)
from pdpipeline.loadgen.window import summary_window
from pdpipeline.profile import SloTier, WorkloadPoint

Say = Callable[[str], None]
# One measured run of a point on the launch.
MeasurePoint = Callable[[Point], Awaitable[BenchResult]]


class Saturation(Protocol):
    """What the sweep reads of a run: whether completions fell behind arrivals."""

    saturated: bool | None


@dataclass
class RateSweep:
    """Stops a rate sweep at saturation: once a request rate saturates the server, the higher
    rates of the same shape are not measured on this launch; they would only queue more."""

    say: Say
    limits: dict[str, float] = field(default_factory=dict)  # shape -> lowest saturating rate

    def points(self, points: Iterable[Point]) -> Iterator[Point]:
        for point in points:
            rate, limit = point.load.request_rate, self.limits.get(point.shape)
            if rate is not None and limit is not None and rate > limit:
                self.say(f"{point.key}: skipped, {point.shape} saturated at {limit:g} req/s")
                continue
            yield point

    def saw(self, point: Point, run: Saturation) -> None:
        rate = point.load.request_rate
        if not run.saturated or rate is None or rate >= self.limits.get(point.shape, math.inf):
            return
        self.limits[point.shape] = rate
        self.say(
            f"{point.key}: saturated (completions fell behind arrivals); "
            f"{point.shape} is not measured above {rate:g} req/s"
        )


@dataclass(frozen=True)
class TierCapacity:
    """What the rate search found for one shape and tier."""

    shape: WorkloadPoint
    tier_name: str
    tier: SloTier
    capacity: Capacity


class InvalidSearchRun(Exception):
    """A run of the rate search had a failed or short request."""


async def search_rates(
    shapes: Iterable[WorkloadPoint], search: RateSearchPlan, measure: MeasurePoint, say: Say
) -> list[TierCapacity]:
    """Per shape and SLO tier of the rate search: the highest rate that meets the tier on this
    launch. One run answers every tier, so a later tier reads the runs of earlier ones."""
    found = []
    settings = search.settings
    for shape in shapes:
        where = f"in{shape.input_len}-out{shape.output_len}"
        runs: dict[float, Measured] = {}
        try:
            for tier_name, tier in search.tiers.items():
                run_at = _open_loop_at(measure, search, shape, tier_name)
                capacity = await search_capacity(
                    tier_measure(run_at, runs, tier),
                    tier.attainment,
                    settings.min_rate,
                    settings.max_rate,
                    settings.steps,
                    settings.growth,
                    settings.tolerance,
                    known=known_attainments(runs, tier),
                )
                found.append(TierCapacity(shape, tier_name, tier, capacity))
                rate = capacity.max_rate
                highest = "none" if rate is None else f"{rate:.3g} req/s"
                say(
                    f"{where} {tier_name}: highest rate meeting the tier {highest} "
                    f"({capacity.bound}, {len(capacity.probes)} rate(s))"
                )
        except InvalidSearchRun as e:
            # A failed request makes a run invalid, never a result: the arm's check reports the
            # run, and the tiers of the shape not yet searched get no capacity.
            say(f"{where}: rate search stopped: {e}")
    return found


def _open_loop_at(
    measure: MeasurePoint, search: RateSearchPlan, shape: WorkloadPoint, tier_name: str
) -> Callable[[float], Awaitable[Measured]]:
    """A run of the shape at an open-loop rate, with the workload's arrival settings."""

    async def run_at(rate: float) -> Measured:
        run = await measure(search.point(shape, rate, tier_name))
        if not run.summary["valid"]:
            raise InvalidSearchRun(f"the run at {rate:.3g} req/s is invalid")
        return Measured(run.records, summary_window(run.summary))

    return run_at
