"""The steady window of a run: the part of it that its figures describe.

A closed loop at concurrency c is steady from the moment its first wave is over (the c-th
completion) to the last request start: before, requests start together and meet an idle
server; after, fewer than c are in flight (the drain). An open loop is steady from the end of a
warm-up share of its arrival period to its last arrival. Inside the window, output tokens count
by when they arrived, requests by when they finished (throughput, goodput) or started (latency).

Times are epoch seconds on the controller. A request starts at its scheduled arrival in an open
loop (so a wait for a free slot counts against the server, not for it), at its send otherwise.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

from pdpipeline.loadgen.client import RequestRecord

# Completions may fall short of arrivals by this share before a rate counts as saturated.
SATURATION_SHARE = 0.9
# Window lengths are sums and differences of epoch seconds: good to a microsecond, not exact.
_CLOCK_SLACK_S = 1e-3


@dataclass(frozen=True)
class Sizing:
    """When a point has measured enough: its window has lasted `min_window_s` with
    `min_window_requests` requests started inside it, and `min_requests` were sent in all. It
    never sends more than `max_requests`, so a server that never settles cannot stall a sweep."""

    min_window_s: float = 20.0
    min_window_requests: int = 32
    max_requests: int = 2000
    min_requests: int = 0
    # Open loop: the share of the arrival period left out at its start.
    warmup_share: float = 0.1

    def window_met(self, window_s: float, window_requests: int) -> bool:
        return (
            window_s + _CLOCK_SLACK_S >= self.min_window_s
            and window_requests >= self.min_window_requests
        )

    def met(self, window_s: float, window_requests: int, requests: int) -> bool:
        return self.window_met(window_s, window_requests) and requests >= self.min_requests


@dataclass(frozen=True)
class Window:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def holds(self, t: float) -> bool:
        """A start inside the window; both bounds are starts, so both count."""
        return self.start <= t <= self.end

    def after_start(self, t: float) -> bool:
        """A completion or token inside the window: the c-th completion opens it, not in it."""
        return self.start < t <= self.end


def summary_window(summary: Mapping[str, float | None]) -> Window | None:
    """The steady window a run's summary (stats.summarize) found; None where it found none."""
    if summary["window_start"] is None:
        return None
    return Window(summary["window_start"], summary["window_end"])


def started_at(record: RequestRecord) -> float:
    return record.scheduled_at if record.scheduled_at is not None else record.sent_at


def finished_at(record: RequestRecord) -> float | None:
    return None if record.e2e_s is None else started_at(record) + record.e2e_s


def token_times(record: RequestRecord) -> list[float]:
    """When each streamed chunk of tokens arrived: first token, then every inter-token gap."""
    if record.ttft_s is None:
        return []
    return list(accumulate(record.itl_s, initial=started_at(record) + record.ttft_s))


def tokens_inside(record: RequestRecord, window: Window) -> float:
    """Output tokens that arrived inside the window.

    A chunk that carried several tokens (the server's count exceeds the chunks) weighs them
    evenly, so a request's tokens add up to its count wherever its chunks fall."""
    times = token_times(record)
    if not times or not record.output_tokens:
        return 0.0
    inside = sum(window.after_start(t) for t in times)
    return inside * record.output_tokens / len(times)


def steady_window(
    records: Sequence[RequestRecord], concurrency: int | None, warmup_share: float
) -> Window | None:
    """The closed loop's window at `concurrency`, else the open loop's; None when the run has
    no steady part (fewer completions than the concurrency, or no start after the c-th)."""
    if concurrency is not None:
        return closed_loop_window(records, concurrency)
    return open_loop_window(records, warmup_share)


def closed_loop_window(records: Sequence[RequestRecord], concurrency: int) -> Window | None:
    ends = sorted(t for r in records if (t := finished_at(r)) is not None)
    if len(ends) < concurrency or not records:
        return None
    window = Window(ends[concurrency - 1], max(started_at(r) for r in records))
    return window if window.seconds > 0 else None


def open_loop_window(records: Sequence[RequestRecord], warmup_share: float) -> Window | None:
    arrivals = [started_at(r) for r in records]
    if len(arrivals) < 2 or max(arrivals) == min(arrivals):
        return None
    return open_loop_bounds(min(arrivals), max(arrivals), warmup_share)


def open_loop_bounds(first: float, last: float, warmup_share: float) -> Window:
    return Window(first + warmup_share * (last - first), last)


def whole_run(records: Sequence[RequestRecord]) -> Window | None:
    """First start to last finish: what every figure covered before steady windows."""
    ends = [t for r in records if (t := finished_at(r)) is not None]
    if not ends:
        return None
    return Window(min(started_at(r) for r in records), max(ends))


def planned_arrivals(gaps: Iterable[float], sizing: Sizing) -> list[float]:
    """Arrival offsets of an open loop, cut where its window first meets `sizing`.

    Decided on the schedule alone (the same seed gives the same arrivals, whatever the server
    does), with the window the summary will find: the warm-up share of the arrival period cut
    from its start."""
    offsets: list[float] = []
    for gap in gaps:
        offsets.append((offsets[-1] if offsets else 0.0) + gap)
        if len(offsets) >= sizing.max_requests:
            break
        window = open_loop_bounds(offsets[0], offsets[-1], sizing.warmup_share)
        inside = len(offsets) - bisect.bisect_left(offsets, window.start)
        if len(offsets) >= 2 and sizing.met(window.seconds, inside, len(offsets)):
            break
    return offsets


def saturated(records: Sequence[RequestRecord], window: Window) -> bool:
    """Whether an open loop's server fell behind its arrivals over the window.

    The requests that arrived inside the window are compared with the completions over the
    same span shifted by their median latency: a server keeping up finishes about as many as
    arrived (edge effects cancel), one falling behind finishes at its own lower rate while
    the backlog grows. A shortfall of one request is noise at any rate."""
    arrived = [r for r in records if window.holds(started_at(r))]
    latencies = [r.e2e_s for r in arrived if r.e2e_s is not None]
    if len(arrived) < 2 or not latencies:
        return False
    lag = statistics.median(latencies)
    shifted = Window(window.start + lag, window.end + lag)
    done = sum(shifted.after_start(t) for r in records if (t := finished_at(r)) is not None)
    shortfall = len(arrived) - done
    return shortfall > max(1.0, (1 - SATURATION_SHARE) * len(arrived))
