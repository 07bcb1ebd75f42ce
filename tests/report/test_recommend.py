"""The recommendation per SLO tier and shape, on the constructed two-layout, two-engine campaign
(tests/report/constructed.py)."""

from __future__ import annotations

import polars as pl
import pytest

from pdpipeline.report.recommend import recommendations
from pdpipeline.report.slo import goodput_by_tier
from tests.report.constructed import LAYOUT_TIERS, layouts_campaign


@pytest.fixture(scope="module")
def goodput() -> pl.DataFrame:
    runs, requests = layouts_campaign()
    return goodput_by_tier(runs, requests, LAYOUT_TIERS)


def test_where_only_disaggregation_meets_the_tier_it_is_recommended_without_a_ratio(goodput):
    # Replication's 20 ms TPOT misses the streaming tier (10 ms); the layouts meet it.
    (row,) = recommendations(goodput, "c").filter(pl.col("tier") == "streaming").rows(named=True)
    assert row["verdict"] == "disaggregated"
    assert row["setup"] == "disaggregated 3P1D (push) [block128]"
    assert row["ratio"] is None and row["rival"] is None
    assert row["sentence"].endswith(
        "disaggregated 3P1D (push) [block128] — it meets the tier and no replicated setup does "
        "at any load measured (no ratio: the replicas' goodput within the tier is 0)."
    )
    assert row["evidence"] != "[]"


def test_the_caveat_marks_the_rows_that_set_disaggregation_against_replicas(goodput):
    found = recommendations(goodput, "c", caveat="X")
    compared = found.filter(pl.col("setup").str.starts_with("disaggregated"))
    assert compared.height and (compared["caveat"] == "X").all()
    assert found.filter(pl.col("caveat").is_null())["verdict"].is_in(["none", "replicated"]).all()
    assert recommendations(goodput, "c")["caveat"].is_null().all()
