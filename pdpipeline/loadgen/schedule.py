"""Arrival schedules: closed loop at a concurrency, or open loop at a request rate."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

from pdpipeline.loadgen.client import RequestRecord
from pdpipeline.loadgen.window import Sizing, planned_arrivals
from pdpipeline.loadgen.workload import RequestSpec, RequestStream

Send = Callable[[RequestSpec], Awaitable[RequestRecord]]


@dataclass(frozen=True)
class Load:
    """How requests arrive.

    Closed loop: `concurrency` requests always in flight. Open loop: `request_rate` per second
    with gamma-distributed gaps (`burstiness` 1 is Poisson; below 1 burstier), at most
    `max_concurrency` in flight when set. Either stops when the requests run out, when its
    steady window is measured (see `run_load`) or, with `duration_s`, when no new request may
    start.
    """

    concurrency: int | None = None
    request_rate: float | None = None
    burstiness: float = 1.0
    max_concurrency: int | None = None
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if (self.concurrency is None) == (self.request_rate is None):
            raise ValueError("a load has either a concurrency or a request rate")

    @property
    def label(self) -> str:
        if self.concurrency is not None:
            return f"c{self.concurrency}"
        return f"r{self.request_rate:g}"

    @property
    def warmup_concurrency(self) -> int:
        return self.concurrency or self.max_concurrency or 1


def arrival_gaps(rate: float, burstiness: float, count: int, seed: int) -> list[float]:
    """Seconds between arrivals: gamma with mean 1/rate and shape `burstiness`."""
    return list(itertools.islice(_gaps(rate, burstiness, seed), count))


def _gaps(rate: float, burstiness: float, seed: int) -> Iterator[float]:
    rng = random.Random(seed)
    scale = 1.0 / (rate * burstiness)
    while True:
        yield rng.gammavariate(burstiness, scale)


async def run_load(
    send: Send,
    requests: Sequence[RequestSpec] | RequestStream,
    load: Load,
    seed: int = 0,
    sizing: Sizing | None = None,
) -> list[RequestRecord]:
    """Issue `requests` under `load`; returns one record per request that was started.

    Without `sizing` every request is sent (of a stream: every one built), or as many as
    `load.duration_s` lets start. With it, requests stop starting once the steady window meets
    its minimums, or at its maximum.
    """
    if not isinstance(requests, RequestStream):
        requests = RequestStream(requests, ready=len(requests))
    deadline = None if load.duration_s is None else time.monotonic() + load.duration_s
    try:
        if load.concurrency is not None:
            return await _closed_loop(send, requests, load.concurrency, deadline, sizing)
        return await _open_loop(send, requests, load, seed, deadline, sizing)
    finally:
        await requests.aclose()


class _ClosedLoopWindow:
    """The closed loop's window as it opens and grows: whether it may stop starting requests.

    Times are epoch seconds, the clock of the records the summary will find the window in:
    the c-th completion seen here is no earlier than the one in the records, and a start no
    later, so the window found afterwards holds at least what was counted here."""

    def __init__(self, concurrency: int, sizing: Sizing | None) -> None:
        self.concurrency = concurrency
        self.sizing = sizing
        self.started = 0
        self.finished = 0
        self.opened_at: float | None = None
        self.inside = 0
        self.done = False

    def start(self, now: float) -> None:
        self.started += 1
        if self.sizing is None:
            return
        if self.opened_at is not None:
            self.inside += 1
        self.done = self.started >= self.sizing.max_requests or (
            self.opened_at is not None
            and self.sizing.met(now - self.opened_at, self.inside, self.started)
        )

    def finish(self, now: float) -> None:
        self.finished += 1
        if self.finished == self.concurrency:
            self.opened_at = now


async def _closed_loop(
    send: Send,
    requests: RequestStream,
    concurrency: int,
    deadline: float | None,
    sizing: Sizing | None,
) -> list[RequestRecord]:
    if sizing is not None:
        # The first wave and the window's minimum, built before the run starts; then a wave's
        # worth kept ready, one for each slot that frees.
        requests.prepare(max(sizing.min_requests, concurrency + sizing.min_window_requests))
        requests.ahead = max(requests.ahead, concurrency)
    window = _ClosedLoopWindow(concurrency, sizing)
    records: list[RequestRecord] = []

    async def worker() -> None:
        while not window.done:
            spec = await requests.next()
            if spec is None or window.done:
                return
            if deadline is not None and time.monotonic() > deadline:
                return
            window.start(time.time())
            records.append(await send(spec))
            window.finish(time.time())

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return sorted(records, key=lambda r: r.index)


async def _open_loop(
    send: Send,
    requests: RequestStream,
    load: Load,
    seed: int,
    deadline: float | None,
    sizing: Sizing | None,
) -> list[RequestRecord]:
    assert load.request_rate is not None
    gaps = _gaps(load.request_rate, load.burstiness, seed)
    if sizing is None:
        offsets = list(itertools.accumulate(itertools.islice(gaps, requests.ready)))
    else:
        offsets = planned_arrivals(gaps, sizing)
        requests.prepare(len(offsets))
    limit = asyncio.Semaphore(load.max_concurrency or len(offsets) or 1)
    records: list[RequestRecord] = []

    async def one(spec: RequestSpec, due: float) -> None:
        async with limit:
            # Sleeps may end a clock tick early; the wait is never negative.
            queue_s = max(0.0, time.monotonic() - (start + due))
            record = await send(spec)
        record.scheduled_at = epoch + due
        record.queue_s = queue_s
        if record.ttft_s is not None:
            record.ttft_s += queue_s
        if record.e2e_s is not None:
            record.e2e_s += queue_s
        records.append(record)

    # One instant on both clocks: monotonic to sleep on, epoch for the records.
    start, epoch = time.monotonic(), time.time()
    async with asyncio.TaskGroup() as group:
        for due in offsets:
            spec = await requests.next()
            if spec is None:
                break
            await asyncio.sleep(max(0.0, start + due - time.monotonic()))
            if deadline is not None and time.monotonic() > deadline:
                break
            group.create_task(one(spec, due))
    return sorted(records, key=lambda r: r.index)
