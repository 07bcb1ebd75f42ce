"""Arrival schedules: gamma gaps, closed and open loops, concurrency caps and the time limit."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from pdpipeline.loadgen.client import RequestRecord
from pdpipeline.loadgen.schedule import Load, arrival_gaps, run_load
from pdpipeline.loadgen.workload import RequestSpec


def specs(count: int) -> list[RequestSpec]:
    return [RequestSpec(i, [1000 + i], 1, 1) for i in range(count)]


class FakeServer:
    """Test double of the HTTP client's `send`: records when each request starts, holds it for
    `hold_s(index)` seconds, and returns a successful record. Tracks requests in flight."""

    def __init__(self, hold_s=lambda index: 0.01) -> None:
        self.hold_s = hold_s
        self.in_flight = 0
        self.peak = 0
        self.started: dict[int, float] = {}
        self.finish_order: list[int] = []

    async def send(self, spec: RequestSpec) -> RequestRecord:
        self.started[spec.index] = time.monotonic()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.hold_s(spec.index))
        finally:
            self.in_flight -= 1
        self.finish_order.append(spec.index)
        return RequestRecord(
            index=spec.index,
            request_id=f"req-{spec.index}",
            status=200,
            prompt_tokens=1,
            output_tokens=1,
            expected_prompt_tokens=1,
            expected_output_tokens=1,
        )


def test_gaps_average_one_over_rate():
    gaps = arrival_gaps(rate=20.0, burstiness=1.0, count=20_000, seed=1)
    assert len(gaps) == 20_000
    assert all(g > 0 for g in gaps)
    # Mean 1/20 = 0.05 s; its standard error is 0.05 / sqrt(20000) ~ 0.00035: 3% is > 4 sigma.
    assert statistics.fmean(gaps) == pytest.approx(0.05, rel=0.03)


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_burstiness_keeps_the_mean_and_sets_the_spread(burstiness: float):
    gaps = arrival_gaps(rate=10.0, burstiness=burstiness, count=20_000, seed=2)
    assert statistics.fmean(gaps) == pytest.approx(0.1, rel=0.05)
    # Gamma with shape k: coefficient of variation 1 / sqrt(k) (Poisson arrivals: 1).
    cv = statistics.pstdev(gaps) / statistics.fmean(gaps)
    assert cv == pytest.approx(burstiness**-0.5, rel=0.1)


def test_gaps_are_reproducible_by_seed():
    assert arrival_gaps(5.0, 1.0, 100, seed=3) == arrival_gaps(5.0, 1.0, 100, seed=3)
    assert arrival_gaps(5.0, 1.0, 100, seed=3) != arrival_gaps(5.0, 1.0, 100, seed=4)


def test_load_needs_exactly_one_of_concurrency_and_rate():
    with pytest.raises(ValueError):
        Load()
    with pytest.raises(ValueError):
        Load(concurrency=2, request_rate=1.0)
    assert Load(concurrency=4).label == "c4"
    assert Load(request_rate=2.5).label == "r2.5"


async def test_closed_loop_keeps_exactly_the_concurrency_in_flight():
    server = FakeServer(hold_s=lambda index: 0.005 + 0.003 * (index % 4))
    records = await run_load(server.send, specs(40), Load(concurrency=4))
    assert len(records) == 40
    assert server.peak == 4
    assert server.in_flight == 0


async def test_closed_loop_with_more_workers_than_requests():
    server = FakeServer()
    records = await run_load(server.send, specs(3), Load(concurrency=8))
    assert [r.index for r in records] == [0, 1, 2]
    assert server.peak == 3


async def test_records_come_back_sorted_by_index():
    # Early requests are held longest, so they finish last.
    server = FakeServer(hold_s=lambda index: 0.05 - 0.005 * index)
    records = await run_load(server.send, specs(8), Load(concurrency=8))
    assert server.finish_order != sorted(server.finish_order)
    assert [r.index for r in records] == list(range(8))


async def test_open_loop_respects_max_concurrency():
    # 1000 req/s for 30 requests held 20 ms each: unbounded, ~20 would overlap.
    server = FakeServer(hold_s=lambda index: 0.02)
    load = Load(request_rate=1000.0, max_concurrency=3)
    records = await run_load(server.send, specs(30), load, seed=0)
    assert [r.index for r in records] == list(range(30))
    assert server.peak == 3


async def test_open_loop_without_cap_overlaps_requests():
    server = FakeServer(hold_s=lambda index: 0.02)
    await run_load(server.send, specs(30), Load(request_rate=1000.0), seed=0)
    assert server.peak > 3


async def test_open_loop_follows_the_arrival_schedule():
    server = FakeServer(hold_s=lambda index: 0.0)
    load = Load(request_rate=100.0)
    start = time.monotonic()
    await run_load(server.send, specs(20), load, seed=5)
    expected = 0.0
    for index, gap in enumerate(arrival_gaps(100.0, 1.0, 20, seed=5)):
        expected += gap
        # Never early; late only by event-loop scheduling.
        assert expected - 0.002 <= server.started[index] - start <= expected + 0.05


async def test_closed_loop_duration_stops_new_requests():
    server = FakeServer(hold_s=lambda index: 0.02)
    start = time.monotonic()
    records = await run_load(server.send, specs(100), Load(concurrency=2, duration_s=0.1))
    # 2 workers x 0.1 s / 0.02 s per request ~ 10-12 requests, far fewer than 100.
    assert 6 <= len(records) <= 14
    assert [r.index for r in records] == list(range(len(records)))
    assert max(server.started.values()) - start <= 0.1 + 0.03
    assert set(server.started) == {r.index for r in records}


async def test_open_loop_duration_stops_new_requests():
    server = FakeServer(hold_s=lambda index: 0.005)
    start = time.monotonic()
    records = await run_load(server.send, specs(200), Load(request_rate=100.0, duration_s=0.2))
    # ~100 req/s x 0.2 s ~ 20 arrivals (Poisson: loose bounds), far fewer than 200.
    assert 5 <= len(records) <= 45
    assert max(server.started.values()) - start <= 0.2 + 0.03
    assert set(server.started) == {r.index for r in records}
