"""The rate search's answer as the report says it."""

from __future__ import annotations

import polars as pl

from pdpipeline.report.capacity import capacity_sentences
from pdpipeline.warehouse.rows import SloCapacityRow, to_frame


def capacity(arm, layout, rate, bound, tier="batch", input_len="512", gpus=2):
    return SloCapacityRow(
        campaign_id="c",
        arm=arm,
        layout=layout,
        engine_variant=None,
        variant="pull" if arm == "disaggregated" else None,
        input_len=input_len,
        output_len="32",
        tier=tier,
        ttft_ms=5000.0,
        tpot_ms=100.0,
        attainment_target=0.9,
        gpus=gpus,
        max_rate=None if rate is None else rate * gpus,
        max_rate_per_gpu=rate,
        first_failing_rate=None,
        bound=bound,
        probes="[]",
    )


def test_each_tier_and_shape_lists_the_setups_most_first_with_their_bounds():
    frame = to_frame(
        [
            capacity("replicated", "2R", 2.5, "found"),
            capacity("disaggregated", "1P1D", 4.0, "above_max"),
            capacity("single", None, None, "below_min", gpus=1),
            capacity("replicated", "2R", 1.25, "budget_spent", input_len="128"),
        ]
    )
    assert capacity_sentences(frame) == [
        "batch (TTFT ≤ 5000 ms, TPOT ≤ 100 ms at 90%) at 128/32, highest request rate per GPU "
        "meeting it: replicated 2R ≥ 1.25 (search budget spent) req/s.",
        "batch (TTFT ≤ 5000 ms, TPOT ≤ 100 ms at 90%) at 512/32, highest request rate per GPU "
        "meeting it: disaggregated 1P1D (pull) ≥ 4 (the highest rate searched) req/s; "
        "replicated 2R 2.5 req/s; single none (not even the lowest rate searched).",
    ]


def test_a_campaign_without_a_rate_search_says_nothing():
    assert capacity_sentences(pl.DataFrame()) == []
