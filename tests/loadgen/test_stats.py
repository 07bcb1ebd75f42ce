"""Run summaries from per-request records, and /metrics parsing and deltas.

Every expected number is worked out by hand in a comment from the records, not from the code.
"""

from __future__ import annotations

import json

from pytest import approx

from pdpipeline.loadgen.client import RequestRecord
from pdpipeline.loadgen.metrics import deltas, parse, total
from pdpipeline.loadgen.schedule import Load
from pdpipeline.loadgen.stats import format_summary, meets, summarize
from pdpipeline.loadgen.window import Sizing
from pdpipeline.profile import SloTier
from tests.loadgen.records import CLOSED, T0, timed


def record(
    index: int,
    sent_at: float,
    ttft_s: float | None,
    e2e_s: float | None,
    output_tokens: int | None = 11,
    prompt_tokens: int | None = 100,
    status: int | None = 200,
    error: str | None = None,
    itl_s: list[float] | None = None,
) -> RequestRecord:
    return RequestRecord(
        index=index,
        request_id=f"req-{index}",
        sent_at=sent_at,
        ttft_s=ttft_s,
        e2e_s=e2e_s,
        itl_s=itl_s or [],
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        expected_prompt_tokens=100,
        expected_output_tokens=11,
        status=status,
        error=error,
    )


# Four good requests, 100 prompt and 11 output tokens each; TPOT = (E2E - TTFT) / 10.
#   index sent     TTFT  E2E   end      TPOT
#   0     1000.0   0.1   0.5   1000.5   0.04
#   1     1000.5   0.2   1.2   1001.7   0.10
#   2     1001.0   0.3   0.6   1001.6   0.03
#   3     1001.5   0.6   2.5   1004.0   0.19
GOOD = [
    record(0, 1000.0, 0.1, 0.5, itl_s=[0.01, 0.03]),
    record(1, 1000.5, 0.2, 1.2, itl_s=[0.02, 0.04]),
    record(2, 1001.0, 0.3, 0.6),
    record(3, 1001.5, 0.6, 2.5),
]


def test_throughput_over_first_sent_to_last_finished():
    s = summarize(GOOD, gpus=2)
    # Window: 1004.0 - 1000.0 = 4.0 s.
    assert s["duration_s"] == approx(4.0)
    assert (s["requests"], s["failed"], s["valid"], s["first_error"]) == (4, 0, True, None)
    # 4 requests / 4 s = 1 req/s; 4 x 11 = 44 output tokens / 4 s = 11 tok/s;
    # 44 + 4 x 100 = 444 total tokens / 4 s = 111 tok/s; per GPU (2): 5.5 and 55.5.
    assert s["request_throughput"] == approx(1.0)
    assert s["output_throughput"] == approx(11.0)
    assert s["total_throughput"] == approx(111.0)
    assert s["output_throughput_per_gpu"] == approx(5.5)
    assert s["total_throughput_per_gpu"] == approx(55.5)
    assert s["gpus"] == 2


def test_latency_percentiles():
    s = summarize(GOOD)
    # TTFT ms sorted [100, 200, 300, 600]: mean 1200/4 = 300. Linear interpolation at rank
    # p/100 x 3: p50 at 1.5 -> 250; p90 at 2.7 -> 300 + 0.7 x 300 = 510; p95 at 2.85 -> 555;
    # p99 at 2.97 -> 591.
    assert s["ttft_mean_ms"] == approx(300)
    assert s["ttft_p50_ms"] == approx(250)
    assert s["ttft_p90_ms"] == approx(510)
    assert s["ttft_p95_ms"] == approx(555)
    assert s["ttft_p99_ms"] == approx(591)
    # TPOT ms sorted [30, 40, 100, 190]: mean 360/4 = 90; p50 at 1.5 -> 70;
    # p90 at 2.7 -> 100 + 0.7 x 90 = 163.
    assert s["tpot_mean_ms"] == approx(90)
    assert s["tpot_p50_ms"] == approx(70)
    assert s["tpot_p90_ms"] == approx(163)
    # E2E ms sorted [500, 600, 1200, 2500]: mean 4800/4 = 1200; p50 at 1.5 -> 900.
    assert s["e2e_mean_ms"] == approx(1200)
    assert s["e2e_p50_ms"] == approx(900)
    # ITL pools every gap of every request: sorted [10, 20, 30, 40]: mean 25; p50 25;
    # p99 at 2.97 -> 30 + 0.97 x 10 = 39.7.
    assert s["itl_mean_ms"] == approx(25)
    assert s["itl_p50_ms"] == approx(25)
    assert s["itl_p99_ms"] == approx(39.7)


def test_goodput_counts_only_requests_meeting_every_slo():
    # Default SLO TTFT <= 500 ms, TPOT <= 50 ms: request 0 (100, 40) and 2 (300, 30) meet it;
    # 1 misses TPOT (100), 3 misses both (600, 190). 2 requests / 4 s = 0.5 req/s.
    assert summarize(GOOD)["goodput"] == approx(0.5)
    # TPOT <= 120 ms lets request 1 in too: 3 / 4 s = 0.75 req/s.
    s = summarize(GOOD, slo=SloTier(ttft_ms=500, tpot_ms=120))
    assert s["goodput"] == approx(0.75)
    assert (s["slo_ttft_ms"], s["slo_tpot_ms"]) == (500, 120)


def test_failed_request_invalidates_the_run_and_is_named():
    failed = record(4, 1000.2, None, None, None, None, status=500, error="HTTP 500: boom")
    s = summarize([*GOOD, failed])
    assert (s["requests"], s["failed"], s["valid"]) == (5, 1, False)
    assert "HTTP 500: boom" in s["first_error"]
    # Only the 4 good requests count: 4 / 4 s.
    assert s["request_throughput"] == approx(1.0)
    assert "HTTP 500: boom" in format_summary(s)


def test_short_request_invalidates_the_run_and_is_named():
    # Status 200 and fast, but 7 of the 11 tokens asked for.
    short = record(4, 1000.2, 0.05, 0.3, output_tokens=7)
    s = summarize([*GOOD, short])
    assert s["valid"] is False
    assert s["failed"] == 1
    assert "7" in s["first_error"]
    # The short request's tokens are left out: still 44 output tokens over 4 s.
    assert s["output_throughput"] == approx(11.0)
    # It would meet the SLO on latency, but a short request is not good: goodput stays 0.5.
    assert s["goodput"] == approx(0.5)


def test_first_error_is_the_first_in_record_order():
    first = record(4, 1000.2, None, None, None, None, status=None, error="ClientError: refused")
    second = record(5, 1000.3, None, None, None, None, status=500, error="HTTP 500: later")
    first_error = summarize([*GOOD, first, second])["first_error"]
    assert "ClientError: refused" in first_error
    assert "later" not in first_error


def test_prompt_token_mismatch_is_named_as_such():
    wrong_prompt = record(4, 1000.2, 0.05, 0.3, prompt_tokens=99)
    assert "prompt" in summarize([*GOOD, wrong_prompt])["first_error"]


def test_no_records_is_not_a_valid_run():
    s = summarize([])
    assert s["valid"] is False
    assert s["request_throughput"] == 0.0
    assert s["ttft_p50_ms"] is None


def test_slo_met():
    slo = SloTier(ttft_ms=500, tpot_ms=50)
    assert meets(record(0, 0.0, 0.1, 0.5), slo)  # TTFT 100 ms, TPOT 40 ms
    assert meets(record(0, 0.0, 0.5, 0.9), slo)  # TTFT 500 ms exactly, TPOT 40 ms
    assert not meets(record(0, 0.0, 0.6, 0.9), slo)  # TTFT 600 ms
    assert not meets(record(0, 0.0, 0.1, 1.1), slo)  # TPOT 100 ms
    assert not meets(record(0, 0.0, None, None, None), slo)  # never got a token
    assert not meets(record(0, 0.0, 0.1, 0.5, error="stream ended without [DONE]"), slo)
    assert not meets(record(0, 0.0, 0.1, 0.5, output_tokens=5), slo)  # short
    # One output token: no TPOT, judged on TTFT alone.
    one = record(0, 0.0, 0.1, 0.1, output_tokens=1)
    one.expected_output_tokens = 1
    assert one.tpot_s is None and meets(one, slo)


# The steady window, on the closed loop of test_window (concurrency 2, five tokens each, 64
# prompt tokens): window [2.0, 3.25] after T0, 1.25 s.
def test_closed_loop_figures_cover_the_window_not_the_ramp():
    s = summarize(CLOSED, slo=SloTier(ttft_ms=300, tpot_ms=300), load=Load(concurrency=2))
    assert (s["window_start"], s["window_end"]) == (T0 + 2.0, T0 + 3.25)
    assert s["window_s"] == s["duration_s"] == 1.25
    # Output tokens by arrival time: 3 of request 2, 5 of 3, 2 of 4 = 10 / 1.25 s = 8 tok/s.
    assert s["output_throughput"] == approx(8.0)
    # Completions inside: 2 (2.75) and 3 (3.25); 1's at 2.0 opened the window. 2 / 1.25 s.
    assert s["request_throughput"] == approx(1.6)
    # Both met TTFT <= 300 ms and TPOT 250 ms <= 300 ms.
    assert s["goodput"] == approx(1.6)
    # Prompts count at their first token: 3 (2.25) and 4 (3.0): 128 + 10 tokens / 1.25 s.
    assert s["total_throughput"] == approx(138 / 1.25)
    # Latency of the requests started inside: 3, 4, 5, all TTFT 250 ms. The first wave's 500
    # and 1000 ms TTFTs (an idle server meeting a burst) are left out.
    assert s["window_requests"] == 3
    assert (s["ttft_mean_ms"], s["ttft_p99_ms"]) == (approx(250), approx(250))
    # The whole run, first start to last finish (4.5 s): every token and request.
    assert s["whole_run_duration_s"] == 4.5
    assert s["whole_run_output_throughput"] == approx(30 / 4.5)
    assert s["whole_run_request_throughput"] == approx(6 / 4.5)
    # Far below the default minimums (20 s, 32 requests); within these, not short.
    assert s["window_short"] is True
    sized = summarize(CLOSED, load=Load(concurrency=2), sizing=Sizing(1.0, 3))
    assert sized["window_short"] is False
    assert s["saturated"] is None  # a closed loop cannot offer more than it is served


def test_without_a_load_the_window_is_the_whole_run():
    s = summarize(CLOSED)
    assert (s["window_start"], s["window_end"], s["window_s"]) == (T0, T0 + 4.5, 4.5)
    assert s["window_requests"] == 6
    assert s["output_throughput"] == s["whole_run_output_throughput"] == approx(30 / 4.5)
    assert s["window_short"] is None and s["saturated"] is None


def test_a_run_without_a_steady_part_falls_back_to_the_whole_run_and_says_so():
    # Concurrency 6 with six requests: nothing starts after the first wave.
    s = summarize(CLOSED, load=Load(concurrency=6), sizing=Sizing(0.0, 1))
    assert (s["window_start"], s["window_end"]) == (T0, T0 + 4.5)
    assert s["window_short"] is True
    assert s["output_throughput"] == approx(30 / 4.5)


def test_open_loop_latency_runs_from_the_scheduled_arrival():
    # Arrivals every 0.5 s from 0 to 10; the first two wait 0.5 s for a slot. Each is served
    # in 0.25 s once sent: TTFT 0.125 s from the send, + the wait for those two.
    records = [timed(i, 0.5 * i, 0.125, [0.125], scheduled=True) for i in range(21)]
    for record in records[:2]:
        record.queue_s = 0.5
        record.sent_at += 0.5
        record.ttft_s += 0.5
        record.e2e_s += 0.5
    load = Load(request_rate=2.0)
    s = summarize(records, load=load, sizing=Sizing(5.0, 10, warmup_share=0.0))
    # Window from the first arrival (no warm-up share) to the last: all 21 started inside.
    assert (s["window_start"], s["window_end"], s["window_requests"]) == (T0, T0 + 10.0, 21)
    # TTFT sorted: nineteen of 125 ms, two of 625 ms (the wait counts); p99 at rank 19.8 is
    # between the two 625s. Mean (19 x 125 + 2 x 625) / 21.
    assert s["ttft_p50_ms"] == approx(125)
    assert s["ttft_p99_ms"] == approx(625)
    assert s["ttft_mean_ms"] == approx((19 * 125 + 2 * 625) / 21)
    assert s["saturated"] is False and s["window_short"] is False
    # With a warm-up share of a tenth: window [1.0, 10.0]; the two that waited are left out.
    s = summarize(records, load=load, sizing=Sizing(5.0, 10, warmup_share=0.1))
    assert (s["window_start"], s["window_requests"]) == (T0 + 1.0, 19)
    assert s["ttft_p99_ms"] == approx(125)


def test_an_open_loop_falling_behind_is_flagged_saturated():
    # Arrivals every 0.5 s, served one at a time in 0.75 s each.
    records = [
        timed(i, 0.5 * i, 0.125, [], scheduled=True, e2e=0.75 * (i + 1) - 0.5 * i)
        for i in range(40)
    ]
    s = summarize(records, load=Load(request_rate=2.0), sizing=Sizing(5.0, 10))
    assert s["saturated"] is True
    assert s["valid"] is True  # saturated is a finding, not a failure


BEFORE = """\
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="tiny"} 100.0
vllm:prompt_tokens_created{engine="0",model_name="tiny"} 1.7e+09
# HELP vllm:prompt_tokens_by_source_total Prompt tokens by source.
# TYPE vllm:prompt_tokens_by_source_total counter
vllm:prompt_tokens_by_source_total{model_name="tiny",source="local_compute"} 100.0
vllm:prompt_tokens_by_source_total{model_name="tiny",source="external_kv_transfer"} 0.0
vllm:prompt_tokens_by_source_created{model_name="tiny",source="local_compute"} 1.7e+09
vllm:prompt_tokens_by_source_created{model_name="tiny",source="external_kv_transfer"} 1.7e+09
# HELP vllm:num_requests_running Requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} 3.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="tiny"} 2.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="tiny"} 4.0
vllm:time_to_first_token_seconds_count{model_name="tiny"} 4.0
vllm:time_to_first_token_seconds_sum{model_name="tiny"} 0.9
vllm:time_to_first_token_seconds_created{model_name="tiny"} 1.7e+09
"""

AFTER = """\
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="tiny"} 612.0
vllm:prompt_tokens_created{engine="0",model_name="tiny"} 1.7e+09
# TYPE vllm:prompt_tokens_by_source_total counter
vllm:prompt_tokens_by_source_total{model_name="tiny",source="local_compute"} 132.0
vllm:prompt_tokens_by_source_total{model_name="tiny",source="external_kv_transfer"} 480.0
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} 1.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="tiny"} 5.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="tiny"} 10.0
vllm:time_to_first_token_seconds_count{model_name="tiny"} 10.0
vllm:time_to_first_token_seconds_sum{model_name="tiny"} 2.4
vllm:time_to_first_token_seconds_created{model_name="tiny"} 1.7e+09
# TYPE vllm:nixl_num_failed_transfers counter
vllm:nixl_num_failed_transfers_total{model_name="tiny"} 0.0
"""


def key(name: str, **labels: str) -> tuple[str, str]:
    return name, json.dumps(dict(sorted(labels.items())))


def test_parse_reads_every_sample_but_created():
    samples = parse(BEFORE)
    assert samples == {
        key("vllm:prompt_tokens_total", engine="0", model_name="tiny"): 100.0,
        key("vllm:prompt_tokens_by_source_total", model_name="tiny", source="local_compute"): 100.0,
        key(
            "vllm:prompt_tokens_by_source_total", model_name="tiny", source="external_kv_transfer"
        ): 0.0,
        key("vllm:num_requests_running", engine="0", model_name="tiny"): 3.0,
        key("vllm:time_to_first_token_seconds_bucket", le="0.1", model_name="tiny"): 2.0,
        key("vllm:time_to_first_token_seconds_bucket", le="+Inf", model_name="tiny"): 4.0,
        key("vllm:time_to_first_token_seconds_count", model_name="tiny"): 4.0,
        key("vllm:time_to_first_token_seconds_sum", model_name="tiny"): 0.9,
    }


def test_deltas_subtract_counters_and_read_gauges_after():
    rows = {(r.name, r.labels): r for r in deltas("decode", parse(BEFORE), parse(AFTER))}
    assert {r.server for r in rows.values()} == {"decode"}
    prompt = rows[key("vllm:prompt_tokens_total", engine="0", model_name="tiny")]
    # Counter: 612 - 100 = 512.
    assert (prompt.before, prompt.after, prompt.delta) == (100.0, 612.0, 512.0)
    # Gauge: the value after the run (1), not 1 - 3.
    running = rows[key("vllm:num_requests_running", engine="0", model_name="tiny")]
    assert (running.before, running.after, running.delta) == (3.0, 1.0, 1.0)
    # Histogram parts accumulate: count 10 - 4 = 6, sum 2.4 - 0.9 = 1.5, bucket 5 - 2 = 3.
    count = rows[key("vllm:time_to_first_token_seconds_count", model_name="tiny")]
    assert count.delta == 6.0
    ttft_sum = rows[key("vllm:time_to_first_token_seconds_sum", model_name="tiny")]
    assert ttft_sum.delta == approx(1.5)
    bucket = rows[key("vllm:time_to_first_token_seconds_bucket", le="0.1", model_name="tiny")]
    assert bucket.delta == 3.0
    # A sample new since before: the whole value is the run's, before is None.
    failed = rows[key("vllm:nixl_num_failed_transfers_total", model_name="tiny")]
    assert (failed.before, failed.delta) == (None, 0.0)


def test_total_sums_deltas_with_label_filter():
    rows = deltas("decode", parse(BEFORE), parse(AFTER))
    name = "vllm:prompt_tokens_by_source_total"
    # local_compute 132 - 100 = 32; external_kv_transfer 480 - 0 = 480; together 512.
    assert total(rows, name) == approx(512.0)
    assert total(rows, name, source="external_kv_transfer") == approx(480.0)
    assert total(rows, name, source="local_compute", model_name="tiny") == approx(32.0)
    assert total(rows, name, source="external_kv_transfer", model_name="other") == 0.0
    assert total(rows, "vllm:no_such_metric_total") == 0.0
