"""The workload matrix each launch measures, as the plan carries it."""

from __future__ import annotations

import pytest

from pdpipeline.loadgen.matrix import workload_points
from pdpipeline.plan import plan_arms
from pdpipeline.profile import Profile
from tests.support.local import local_profile_data


@pytest.fixture
def profile(tiny_model) -> Profile:
    return Profile.model_validate(local_profile_data(tiny_model))


def test_every_point_is_measured_repeats_times_in_order(profile):
    points = list(workload_points(profile.workload))
    workload = profile.workload
    assert len(points) == len(workload.points) * len(workload.concurrency) * workload.repeats
    assert [p.repeat for p in points[: workload.repeats]] == list(range(workload.repeats))
    assert len({p.key for p in points}) == len(points)  # every run gets its own prompts


def test_every_launch_carries_the_matrix_its_sizing_and_slo(profile: Profile):
    for arm in profile.enabled_arms:
        for plan in plan_arms(profile, arm):
            assert list(plan.load.points) == list(workload_points(profile.workload))
            assert plan.load.slo == profile.slo
            assert plan.load.sizing.max_requests == profile.workload.max_requests_per_point
