"""The rows of what an arm measured: KV figures from both sides of a pair, what makes a run
invalid, and which backend served each request."""

from __future__ import annotations

import json

import pytest

from pdpipeline.loadgen.bench import BenchResult
from pdpipeline.loadgen.client import RequestRecord
from pdpipeline.loadgen.matrix import workload_points
from pdpipeline.loadgen.metrics import MetricDelta
from pdpipeline.loadgen.stats import summarize
from pdpipeline.plan import plan_arms
from pdpipeline.profile import Profile
from pdpipeline.serving.protocol import KV_PARAMS_MISSING_TOTAL
from pdpipeline.warehouse.measured import ArmResult, backend_requests, kv_transfer_figures
from tests.support.local import local_profile_data


@pytest.fixture
def profile(tiny_model) -> Profile:
    data = local_profile_data(tiny_model)
    data["arms"]["disaggregated"]["variants"] = [
        {"name": "pull", "kv_connector": "NixlConnector"},
        {"name": "push", "kv_connector": "NixlPushConnector"},
    ]
    return Profile.model_validate(data)


def server(plan, role: str) -> str:
    return next(i.server.name for i in plan.instances if i.server.role == role)


def metric(server_name: str, name: str, delta: float, **labels: str) -> MetricDelta:
    return MetricDelta(server_name, name, json.dumps(labels), 0.0, delta, delta)


def test_kv_figures_count_each_transfer_once_whichever_side_records_it(profile):
    pull, push = plan_arms(profile, "disaggregated")
    # Pull: the decode side records the bytes it read; push: the prefill side records its writes.
    for plan, recorder in ((pull, "decode"), (push, "prefill")):
        rows = [
            metric(server(plan, recorder), "vllm:nixl_bytes_transferred_sum", 8192.0),
            metric(server(plan, recorder), "vllm:nixl_bytes_transferred_count", 2.0),
            metric(server(plan, recorder), "vllm:nixl_xfer_time_seconds_sum", 0.004),
            metric(
                server(plan, "decode"),
                "vllm:prompt_tokens_by_source_total",
                512.0,
                source="external_kv_transfer",
            ),
            # The prefill computes its prompt itself: not KV that moved.
            metric(
                server(plan, "prefill"),
                "vllm:prompt_tokens_by_source_total",
                512.0,
                source="local_compute",
            ),
            # A server outside the pair (the proxy) is never counted as a KV side.
            metric("proxy", "vllm:nixl_bytes_transferred_sum", 99.0),
        ]
        kv = kv_transfer_figures(rows, plan)
        assert kv["kv_bytes"] == 8192.0 and kv["kv_transfers"] == 2.0, plan.key
        assert kv["kv_xfer_time_s"] == pytest.approx(0.004)
        assert kv["kv_external_tokens"] == 512.0
        assert kv["kv_failed_transfers"] == 0.0 and kv["kv_params_missing"] == 0.0


def records(count: int) -> list[RequestRecord]:
    return [
        RequestRecord(
            index=i,
            request_id=f"r{i}",
            served_by="prefill=a,decode=b",
            sent_at=1_700_000_000.0 + i,
            ttft_s=0.1,
            e2e_s=0.25,
            itl_s=[0.01] * 15,
            prompt_tokens=256,
            output_tokens=16,
            expected_prompt_tokens=256,
            expected_output_tokens=16,
            status=200,
        )
        for i in range(count)
    ]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (KV_PARAMS_MISSING_TOTAL, "1 prefill(s) returned no KV params"),
        ("vllm:nixl_num_failed_transfers_total", "1 failed NIXL transfer(s)"),
    ],
)
def test_a_run_whose_kv_did_not_move_is_invalid_with_the_reason(profile, name, reason):
    plan = plan_arms(profile, "disaggregated")[0]
    point = next(workload_points(profile.workload))
    done = records(4)
    side = "proxy" if name == KV_PARAMS_MISSING_TOTAL else server(plan, "decode")
    run = BenchResult(done, summarize(done, gpus=plan.devices), [metric(side, name, 1.0)], 0)
    result = ArmResult("disaggregated")
    result.add_point("c1", point, run, plan)
    assert not result.valid
    assert result.runs[0].invalid_reason == reason
    # Its requests are kept as measured: the run is invalid, not the evidence.
    assert len(result.requests) == 4 and all(r.ok for r in result.requests)


def test_backend_requests_count_each_role_of_a_pair_and_skip_unanswered():
    pair = "prefill=http://a:1;decode=http://b:2"
    other = "prefill=http://a:3;decode=http://b:2"
    records = [
        RequestRecord(index=i, request_id=str(i), sent_at=0.0, served_by=served)
        for i, served in enumerate([pair, other, pair, "", "http://c:4"])
    ]
    assert backend_requests(records) == {
        "decode": {"http://b:2": 3},
        "prefill": {"http://a:1": 2, "http://a:3": 1},
        "standalone": {"http://c:4": 1},
    }
