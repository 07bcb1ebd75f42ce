"""Arrival schedules: closed loop at a concurrency, or open loop at a request rate."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pdpipeline.loadgen.client import RequestRecord
from pdpipeline.loadgen.workload import RequestSpec

Send = Callable[[RequestSpec], Awaitable[RequestRecord]]


@dataclass(frozen=True)
class Load:
    """How requests arrive.

    Closed loop: `concurrency` requests always in flight. Open loop: `request_rate` per second
    with gamma-distributed gaps (`burstiness` 1 is Poisson; below 1 burstier), at most
    `max_concurrency` in flight when set. Either stops when the requests run out or, with
    `duration_s`, when no new request may start.
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
    rng = random.Random(seed)
    scale = 1.0 / (rate * burstiness)
    return [rng.gammavariate(burstiness, scale) for _ in range(count)]


async def run_load(
    send: Send, requests: Sequence[RequestSpec], load: Load, seed: int = 0
) -> list[RequestRecord]:
    """Issue `requests` under `load`; returns one record per request that was started."""
    deadline = None if load.duration_s is None else time.monotonic() + load.duration_s
    if load.concurrency is not None:
        return await _closed_loop(send, requests, load.concurrency, deadline)
    return await _open_loop(send, requests, load, seed, deadline)


async def _closed_loop(
    send: Send, requests: Sequence[RequestSpec], concurrency: int, deadline: float | None
) -> list[RequestRecord]:
    pending = iter(requests)
    records: list[RequestRecord] = []

    async def worker() -> None:
        for spec in pending:
            if deadline is not None and time.monotonic() > deadline:
                return
            records.append(await send(spec))

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return sorted(records, key=lambda r: r.index)


async def _open_loop(
    send: Send,
    requests: Sequence[RequestSpec],
    load: Load,
    seed: int,
    deadline: float | None,
) -> list[RequestRecord]:
    assert load.request_rate is not None
    gaps = arrival_gaps(load.request_rate, load.burstiness, len(requests), seed)
    limit = asyncio.Semaphore(load.max_concurrency or len(requests) or 1)
    records: list[RequestRecord] = []

    async def one(spec: RequestSpec) -> None:
        async with limit:
            records.append(await send(spec))

    start = time.monotonic()
    due = 0.0
    async with asyncio.TaskGroup() as group:
        for spec, gap in zip(requests, gaps, strict=True):
            due += gap
            await asyncio.sleep(max(0.0, start + due - time.monotonic()))
            if deadline is not None and time.monotonic() > deadline:
                break
            group.create_task(one(spec))
    return sorted(records, key=lambda r: r.index)
