"""Shared fixtures: the tiny model, a local profile on free ports, and one single arm running for
the tests that only read from its server."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdpipeline.launch.local import port_is_free
from pdpipeline.profile import Profile
from pdpipeline.serving.tinymodel import build_tiny_model, is_built
from tests.support.local import TINY_MODEL, local_profile_data
from tests.support.servers import Arm, group_alive


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The tiny model dir `make` builds; built here when a test runs without make."""
    if not is_built(TINY_MODEL):
        build_tiny_model(TINY_MODEL)
    return TINY_MODEL


@pytest.fixture
def local_profile(tiny_model):
    return Profile.model_validate(local_profile_data(tiny_model))


@pytest.fixture(scope="session")
async def single(tiny_model, tmp_path_factory):
    """The single arm's server and proxy, started once for every test that only sends them
    requests (tests/serving, tests/loadgen's agreement with vllm bench serve)."""
    profile = Profile.model_validate(local_profile_data(tiny_model))
    async with Arm(profile, "single", tmp_path_factory.mktemp("single")) as arm:
        yield arm
    # Teardown is part of the contract: every process gone, every port free again.
    assert not any(group_alive(pid) for pid in arm.pids)
    ports = [p for i in arm.plan.instances for p in i.service.ports] + [arm.plan.proxy.port]
    assert all(port_is_free("127.0.0.1", p) for p in ports)
