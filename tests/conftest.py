"""Shared fixtures: the tiny model and a local profile on free ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdpipeline.serving.tinymodel import build_tiny_model, is_built
from tests.support.local import TINY_MODEL, local_profile_data


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The tiny model dir `make` builds; built here when a test runs without make."""
    if not is_built(TINY_MODEL):
        build_tiny_model(TINY_MODEL)
    return TINY_MODEL


@pytest.fixture
def local_profile(tiny_model):
    from pdpipeline.profile import Profile

    return Profile.model_validate(local_profile_data(tiny_model))
