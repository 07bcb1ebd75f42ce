"""The steady window: where it starts and ends, what counts inside it, when a rate saturates,
on the constructed requests of tests/loadgen/records.py."""

from __future__ import annotations

import pytest

from pdpipeline.loadgen.client import RequestRecord
from pdpipeline.loadgen.window import (
    Sizing,
    Window,
    closed_loop_window,
    open_loop_window,
    planned_arrivals,
    saturated,
    steady_window,
    token_times,
    tokens_inside,
    whole_run,
)
from tests.loadgen.records import CLOSED, T0, timed


def test_closed_loop_window_runs_from_the_cth_completion_to_the_last_start():
    # The first wave (requests 0 and 1, started together on an idle server) is the ramp.
    assert closed_loop_window(CLOSED, concurrency=2) == Window(T0 + 2.0, T0 + 3.25)
    # At concurrency 1 the first completion opens it.
    assert closed_loop_window(CLOSED, concurrency=1) == Window(T0 + 1.5, T0 + 3.25)
    assert steady_window(CLOSED, 2, warmup_share=0.5) == Window(T0 + 2.0, T0 + 3.25)


def test_closed_loop_without_a_start_after_the_first_wave_has_no_window():
    # Six requests at concurrency 6: all start at once, none after any completion.
    wave = [timed(i, 0.0, 0.25, [0.25]) for i in range(6)]
    assert closed_loop_window(wave, concurrency=6) is None
    assert closed_loop_window(CLOSED[:1], concurrency=2) is None  # fewer completions than c
    assert whole_run(wave) == Window(T0, T0 + 0.5)


def test_token_times_follow_the_first_token_and_every_gap():
    assert token_times(CLOSED[2]) == [T0 + 1.75, T0 + 2.0, T0 + 2.25, T0 + 2.5, T0 + 2.75]
    # An open loop's request counts from its scheduled arrival, where its TTFT starts.
    late = timed(0, 1.0, 0.5, [0.25], scheduled=True)
    late.sent_at = T0 + 1.25  # sent after a 0.25 s wait for a slot
    assert token_times(late) == [T0 + 1.5, T0 + 1.75]
    failed = RequestRecord(index=0, request_id="x", sent_at=T0, error="refused")
    assert token_times(failed) == []


def test_a_request_straddling_the_window_counts_only_its_tokens_inside():
    window = Window(T0 + 2.0, T0 + 3.25)
    # Request 2's tokens 1.75 and 2.0 are at or before the start (the opening completion's
    # instant belongs to the ramp); 2.25, 2.5, 2.75 are inside.
    assert tokens_inside(CLOSED[2], window) == 3
    # Request 4's 3.0 and 3.25 are inside (the end is), 3.5 .. 4.0 after it.
    assert tokens_inside(CLOSED[4], window) == 2
    assert tokens_inside(CLOSED[3], window) == 5
    assert tokens_inside(CLOSED[0], window) == 0


def test_chunks_of_several_tokens_share_the_count_evenly():
    # The server counted 10 tokens in 5 chunks: each chunk carries 2.
    record = timed(0, 0.0, 0.25, [0.25] * 4)
    record.output_tokens = record.expected_output_tokens = 10
    assert tokens_inside(record, Window(T0 + 0.5, T0 + 1.25)) == 6  # chunks 0.75, 1.0, 1.25


def test_open_loop_window_starts_after_the_warm_up_share_of_the_arrival_period():
    # Arrivals every 0.5 s from 1.0 to 11.0: a 10 s arrival period; a tenth of it left out.
    arrivals = [timed(i, 1.0 + 0.5 * i, 0.25, [0.25], scheduled=True) for i in range(21)]
    for record in arrivals:
        record.sent_at += 0.125  # a slot wait: the window follows the schedule, not the sends
    assert open_loop_window(arrivals, warmup_share=0.1) == Window(T0 + 2.0, T0 + 11.0)
    assert steady_window(arrivals, None, warmup_share=0.25) == Window(T0 + 3.5, T0 + 11.0)
    assert open_loop_window(arrivals[:1], warmup_share=0.1) is None


def test_planned_arrivals_stop_once_the_window_meets_both_minimums():
    # One arrival per second: offsets 1, 2, 3, ...; the window is the last 90% of [1, n].
    gaps = iter([1.0] * 1000)
    sizing = Sizing(min_window_s=9.0, min_window_requests=3, warmup_share=0.1)
    # n = 11: window [2.0, 11.0], 9 s long, with 10 arrivals in it.
    assert planned_arrivals(gaps, sizing) == [float(i) for i in range(1, 12)]
    # Enough seconds sooner than enough requests: arrivals every 0.01 s, 50 needed inside.
    sizing = Sizing(min_window_s=0.1, min_window_requests=50, warmup_share=0.1)
    offsets = planned_arrivals(iter([0.01] * 1000), sizing)
    window = Window(offsets[0] + 0.1 * (offsets[-1] - offsets[0]), offsets[-1])
    assert sum(window.holds(t) for t in offsets) == 50
    # The bound wins over minimums it cannot reach.
    capped = Sizing(min_window_s=1e6, min_window_requests=1, max_requests=25)
    assert len(planned_arrivals(iter([1.0] * 1000), capped)) == 25


def test_sizing_counts_both_minimums_and_the_total():
    sizing = Sizing(min_window_s=20.0, min_window_requests=32, min_requests=40)
    assert sizing.met(20.0, 32, 40)
    assert not sizing.met(19.5, 32, 40)
    assert not sizing.met(25.0, 31, 40)
    assert not sizing.met(25.0, 32, 39)
    # Sums of epoch seconds are off by far less than a millisecond: not short.
    assert sizing.window_met(20.0 - 1e-7, 32)


def arrivals_every(spacing: float, count: int, e2e: list[float]) -> list[RequestRecord]:
    """An open loop's requests arriving every `spacing` s, the i-th taking `e2e[i]` s."""
    return [
        timed(i, spacing * i, min(0.125, e2e[i]), [], scheduled=True, e2e=e2e[i])
        for i in range(count)
    ]


def test_a_server_keeping_up_is_not_saturated():
    # 40 arrivals 0.5 s apart, each served in 0.25-0.5 s.
    records = arrivals_every(0.5, 40, [0.25 + 0.125 * (i % 3) for i in range(40)])
    assert not saturated(records, open_loop_window(records, 0.1))


def test_a_long_but_steady_latency_is_not_saturation():
    # 40 arrivals 0.5 s apart, each taking 6 s. The window [1.95, 19.5] holds 36 arrivals but
    # only 28 completions (arrivals 0-27): 12 are in flight at its end, and only 4 were at its
    # start, the ramp outlasting the warm-up share. Shifted by the latency, 36 completions
    # match the 36 arrivals.
    records = arrivals_every(0.5, 40, [6.0] * 40)
    window = open_loop_window(records, 0.1)
    inside = [r for r in records if window.after_start(r.scheduled_at + r.e2e_s)]
    assert len(inside) == 28  # a plain count would call this saturated (< 0.9 x 36)
    assert not saturated(records, window)


def test_a_server_falling_behind_is_saturated():
    # 40 arrivals 0.5 s apart, served one at a time in 0.75 s: completions at 2/3 the arrival
    # rate, and each request waits longer than the one before.
    e2e = [0.75 * (i + 1) - 0.5 * i for i in range(40)]
    records = arrivals_every(0.5, 40, e2e)
    assert saturated(records, open_loop_window(records, 0.1))


def test_a_burst_beyond_the_server_is_saturated():
    # 50 arrivals within 50 ms; the server takes 0.1 s for each, one after another.
    e2e = [0.1 * (i + 1) - 0.001 * i for i in range(50)]
    records = arrivals_every(0.001, 50, e2e)
    assert saturated(records, open_loop_window(records, 0.1))


@pytest.mark.parametrize("count", [0, 1])
def test_too_few_arrivals_to_judge_are_not_saturated(count):
    records = arrivals_every(0.5, count, [5.0] * count)
    assert not saturated(records, Window(T0, T0 + 1.0))
