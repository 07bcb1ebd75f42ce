"""The runner's rate search on a launch: an invalid run ends its shape's search."""

from __future__ import annotations

from pdpipeline.loadgen.bench import BenchResult
from pdpipeline.loadgen.client import RequestRecord
from pdpipeline.plan import plan_arms
from pdpipeline.profile import Profile
from pdpipeline.runner import _search_rates
from pdpipeline.warehouse.measured import ArmResult
from tests.support.local import local_profile_data


async def test_an_invalid_search_run_ends_its_shapes_search_without_a_capacity(tiny_model):
    data = local_profile_data(tiny_model, points=[{"input_len": 64, "output_len": 8}])
    data["workload"]["rate_search"] = {"min_rate": 1, "max_rate": 8, "steps": 4}
    data["slo_tiers"] = {"loose": {"ttft_ms": 1000}, "strict": {"ttft_ms": 1}}
    profile = Profile.model_validate(data)
    (plan,) = plan_arms(profile, "single")
    measured: list[float] = []

    async def measure_double(point):
        """A test double of a measured run: every request meets any tier; from 4 req/s on, a
        request fails and the run is invalid."""
        rate = point.load.request_rate
        measured.append(rate)
        record = RequestRecord(
            index=0, request_id="r", status=200, prompt_tokens=0, output_tokens=0, ttft_s=1e-4
        )
        summary = {"valid": rate < 4, "window_start": None, "window_end": None}
        return BenchResult([record], summary, [], 0)

    said: list[str] = []
    result = ArmResult("single")
    await _search_rates(plan, "c", measure_double, result, said.append)
    # loose climbs 1, 2 and stops at the invalid 4; strict never starts.
    assert measured == [1, 2, 4]
    assert result.slo_capacity == []
    assert said == ["[single] in64-out8: rate search stopped: the run at 4 req/s is invalid"]
