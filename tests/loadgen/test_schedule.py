"""Arrival schedules: gamma gaps, closed and open loops, concurrency caps and the time limit."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time

import pytest

from pdpipeline.loadgen.client import RequestRecord
from pdpipeline.loadgen.schedule import Load, arrival_gaps, run_load
from pdpipeline.loadgen.stats import summarize
from pdpipeline.loadgen.window import Sizing, planned_arrivals
from pdpipeline.loadgen.workload import RequestSpec, RequestStream


def specs(count: int) -> list[RequestSpec]:
    return [RequestSpec(i, [1000 + i], 1, 1) for i in range(count)]


class FakeServer:
    """Test double of the HTTP client's `send`: records when each request starts, holds it for
    `hold_s(index)` seconds, and returns a successful record timed as the client times one (the
    first token half way, the end when the hold is over). Tracks requests in flight."""

    def __init__(self, hold_s=lambda index: 0.01) -> None:
        self.hold_s = hold_s
        self.in_flight = 0
        self.peak = 0
        self.started: dict[int, float] = {}
        self.finish_order: list[int] = []

    async def send(self, spec: RequestSpec) -> RequestRecord:
        self.started[spec.index] = time.monotonic()
        sent_at, start = time.time(), time.perf_counter()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.hold_s(spec.index))
        finally:
            self.in_flight -= 1
        self.finish_order.append(spec.index)
        e2e_s = time.perf_counter() - start
        return RequestRecord(
            index=spec.index,
            request_id=f"req-{spec.index}",
            sent_at=sent_at,
            ttft_s=e2e_s / 2,
            e2e_s=e2e_s,
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


def endless() -> RequestStream:
    """Requests without end, as a sized run gets them: the sizing alone stops the load."""
    return RequestStream(RequestSpec(i, [1000 + i], 1, 1) for i in itertools.count())


async def test_open_loop_times_from_the_scheduled_arrival_and_records_the_queue():
    # One slot, 20 ms per request, arrivals ~5 ms apart: each request waits longer for the slot.
    server = FakeServer(hold_s=lambda index: 0.02)
    load = Load(request_rate=200.0, max_concurrency=1)
    records = await run_load(server.send, specs(10), load, seed=1)
    dues = list(itertools.accumulate(arrival_gaps(200.0, 1.0, 10, seed=1)))
    for record, due in zip(records, dues, strict=True):
        # The schedule's own arrivals, on the epoch clock (good to a microsecond there).
        planned = due - dues[0]
        assert record.scheduled_at - records[0].scheduled_at == pytest.approx(planned, abs=1e-6)
        # The wait is from the planned arrival to the send; the send's own timing comes on top.
        assert record.queue_s == pytest.approx(record.sent_at - record.scheduled_at, abs=0.003)
        send_e2e = record.e2e_s - record.queue_s
        assert send_e2e == pytest.approx(0.02, abs=0.01)
        assert record.ttft_s == pytest.approx(record.queue_s + send_e2e / 2)
    # Ten requests of 20 ms through one slot take ~200 ms; the last arrives by ~50 ms.
    assert records[-1].queue_s > 0.1
    assert [r.queue_s for r in records] == sorted(r.queue_s for r in records)
    # The figures see the queue: TTFT p50 is far above the 10 ms a request takes to its first
    # token once sent.
    summary = summarize(records, load=load, sizing=Sizing(0.0, 1))
    assert summary["ttft_p50_ms"] > 40


async def test_closed_loop_keeps_running_until_the_window_lasts_long_enough():
    # c=2, 20 ms per request: the window opens ~20 ms in; a start every ~10 ms after.
    server = FakeServer(hold_s=lambda index: 0.02)
    load = Load(concurrency=2)
    sizing = Sizing(min_window_s=0.2, min_window_requests=5, max_requests=1000)
    records = await run_load(server.send, endless(), load, sizing=sizing)
    summary = summarize(records, load=load, sizing=sizing)
    assert summary["window_short"] is False
    # It stopped starting requests as soon as the window was long enough: within one hold.
    assert 0.2 <= summary["window_s"] <= 0.2 + 0.02 + 0.02
    # ~0.2 s / 10 ms per start, plus the first wave: far below the bound.
    assert 15 <= len(records) <= 30
    assert server.in_flight == 0


async def test_closed_loop_keeps_running_until_enough_requests_started_in_the_window():
    server = FakeServer(hold_s=lambda index: 0.05)
    load = Load(concurrency=2)
    sizing = Sizing(min_window_s=0.0, min_window_requests=6, max_requests=1000)
    records = await run_load(server.send, endless(), load, sizing=sizing)
    summary = summarize(records, load=load, sizing=sizing)
    assert summary["window_requests"] >= 6 and summary["window_short"] is False
    # The first wave (2), the start on the first completion before the window opened (1), and
    # the window's six.
    assert len(records) == 2 + 1 + 6


async def test_a_point_reaching_the_bound_stops_there_and_says_its_window_is_short():
    server = FakeServer(hold_s=lambda index: 0.01)
    load = Load(concurrency=2)
    sizing = Sizing(min_window_s=60.0, min_window_requests=5, max_requests=7)
    records = await run_load(server.send, endless(), load, sizing=sizing)
    assert len(records) == 7
    summary = summarize(records, load=load, sizing=sizing)
    assert summary["window_short"] is True
    assert summary["valid"] is True  # short, not wrong


async def test_open_loop_sends_the_arrivals_its_window_needs():
    server = FakeServer(hold_s=lambda index: 0.002)
    load = Load(request_rate=500.0)
    sizing = Sizing(min_window_s=0.1, min_window_requests=20, max_requests=1000)
    records = await run_load(server.send, endless(), load, seed=3, sizing=sizing)
    planned = planned_arrivals(iter(arrival_gaps(500.0, 1.0, 1000, seed=3)), sizing)
    assert len(records) == len(planned) < 1000
    summary = summarize(records, load=load, sizing=sizing)
    assert summary["window_short"] is False and summary["saturated"] is False
    assert summary["window_s"] >= 0.1 and summary["window_requests"] >= 20
