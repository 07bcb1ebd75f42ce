"""What each launch measures: the workload matrix (shape x load x repeat), how long each point
runs, the SLO of each run's goodput, the client's settings and the rate search after it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from pdpipeline.loadgen.schedule import Load
from pdpipeline.loadgen.window import Sizing
from pdpipeline.loadgen.workload import Api
from pdpipeline.profile import Profile, SloTier
from pdpipeline.profile.workload import Lengths, RateSearch, Workload, WorkloadPoint


@dataclass(frozen=True)
class Point:
    """One cell of the workload matrix, repeated `repeats` times."""

    input_len: Lengths
    output_len: Lengths
    load: Load
    repeat: int
    # The SLO tier a rate search measures this point for; None for the workload matrix.
    searched_for: str | None = None

    @property
    def shape(self) -> str:
        return f"in{self.input_len}-out{self.output_len}"

    @property
    def key(self) -> str:
        key = f"{self.shape}-{self.load.label}-rep{self.repeat}"
        return f"{key}-search" if self.searched_for else key


@dataclass(frozen=True)
class RateSearchPlan:
    """Per shape and SLO tier, the search for the highest open-loop rate meeting the tier."""

    settings: RateSearch
    tiers: Mapping[str, SloTier]
    burstiness: float
    max_concurrency: int | None

    def point(self, shape: WorkloadPoint, rate: float, tier_name: str) -> Point:
        """The run of `shape` at `rate` searched for `tier_name`, with the matrix's arrivals."""
        load = Load(
            request_rate=rate, burstiness=self.burstiness, max_concurrency=self.max_concurrency
        )
        return Point(shape.input_len, shape.output_len, load, 0, tier_name)


@dataclass(frozen=True)
class LoadPlan:
    """What a launch sends through its proxy, and how each point is measured and judged."""

    served_name: str
    api: Api
    request_timeout_s: float
    shapes: tuple[WorkloadPoint, ...]
    points: tuple[Point, ...]
    sizing: Sizing
    warmup_requests: int
    seed: int
    # The limits of each run's own goodput figure.
    slo: SloTier
    rate_search: RateSearchPlan | None = None


def load_plan(profile: Profile) -> LoadPlan:
    """The load every launch of the profile measures."""
    workload = profile.workload
    search = workload.rate_search
    return LoadPlan(
        served_name=profile.model.served_name,
        api=workload.api,
        request_timeout_s=workload.request_timeout_s,
        shapes=tuple(workload.points),
        points=tuple(workload_points(workload)),
        sizing=point_sizing(workload),
        warmup_requests=workload.warmup_requests,
        seed=workload.seed,
        slo=profile.slo,
        rate_search=None
        if search is None
        else RateSearchPlan(
            settings=search,
            tiers={name: profile.tiers[name] for name in search.tiers or profile.tiers},
            burstiness=workload.burstiness,
            max_concurrency=workload.max_concurrency,
        ),
    )


def workload_points(workload: Workload) -> Iterator[Point]:
    """The matrix in the order it is measured: per shape, per load, each repeat."""
    loads = [Load(concurrency=c) for c in workload.concurrency] + [
        Load(
            request_rate=rate,
            burstiness=workload.burstiness,
            max_concurrency=workload.max_concurrency,
        )
        for rate in workload.request_rates
    ]
    for p in workload.points:
        for load in loads:
            for repeat in range(workload.repeats):
                yield Point(p.input_len, p.output_len, load, repeat)


def point_sizing(workload: Workload) -> Sizing:
    """How long each point of the workload runs: until its steady window is measured."""
    return Sizing(
        min_window_s=workload.min_window_s,
        min_window_requests=workload.min_window_requests,
        max_requests=workload.max_requests_per_point,
        min_requests=workload.requests_per_point,
        warmup_share=workload.open_loop_warmup_share,
    )
