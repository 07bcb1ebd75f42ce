"""One SLO rule, alike on one request, numpy arrays and polars expressions; the run's own SLO."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pdpipeline.profile import RUN_SLO, Profile, SloTier
from tests.support.local import local_profile_data

# (ok, TTFT ms, TPOT ms) and whether each meets TTFT <= 500 ms, TPOT <= 50 ms.
REQUESTS = [
    ((True, 100.0, 40.0), True),
    ((True, 500.0, 50.0), True),  # at exactly the limits
    ((True, 600.0, 40.0), False),
    ((True, 100.0, 60.0), False),
    ((True, 100.0, None), True),  # one output token: no decode gap to miss
    ((True, None, None), False),  # no first token
    ((False, 100.0, 40.0), False),  # failed
]
TIER = SloTier(ttft_ms=500, tpot_ms=50)


def test_one_request_meets_a_tier_by_every_limit_it_gives():
    for request, met in REQUESTS:
        assert TIER.meets(*request) is met, request
    assert SloTier(tpot_ms=50).meets(True, 600.0, 40.0)
    assert not SloTier(ttft_ms=500).meets(True, None, 40.0)


def test_arrays_and_expressions_meet_as_one_request_does():
    ok, ttft, tpot = (list(column) for column in zip(*(r for r, _ in REQUESTS), strict=True))
    expected = [met for _, met in REQUESTS]
    nan = [np.nan if v is None else v for v in ttft], [np.nan if v is None else v for v in tpot]
    arrays = TIER.meets(np.array(ok), np.array(nan[0]), np.array(nan[1]))
    assert arrays.tolist() == expected
    frame = pl.DataFrame({"ok": ok, "ttft": ttft, "tpot": tpot})
    met = frame.select(TIER.meets(pl.col("ok"), pl.col("ttft"), pl.col("tpot")))
    assert met.to_series().to_list() == expected


def test_a_tier_needs_a_limit():
    with pytest.raises(ValueError, match="ttft_ms and/or tpot_ms"):
        SloTier()


def test_the_runs_slo_takes_the_default_of_a_limit_left_out(tiny_model):
    data = local_profile_data(tiny_model)
    assert Profile.model_validate(data).slo == RUN_SLO
    data["slo"] = {"ttft_ms": 300}
    profile = Profile.model_validate(data)
    assert profile.slo == SloTier(ttft_ms=300, tpot_ms=RUN_SLO.tpot_ms)
    assert profile.tiers == {"default": SloTier(ttft_ms=300, tpot_ms=50)}
