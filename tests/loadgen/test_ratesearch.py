"""The capacity search: its ladder, bisection, budget and cache, and the attainment it judges by.

Every measurement here comes from a test double standing in for a run against a server.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from pdpipeline.loadgen.client import RequestRecord
from pdpipeline.loadgen.ratesearch import (
    Measured,
    attainment,
    known_attainments,
    search_capacity,
    tier_measure,
)
from pdpipeline.loadgen.window import Window
from pdpipeline.profile import SloTier

T0 = 1024.0


@dataclass
class MeasureDouble:
    """Test double for a run at a rate: the attainment `at` gives, and every rate asked for."""

    at: Callable[[float], float | None]
    calls: list[float] = field(default_factory=list)

    async def __call__(self, rate: float) -> float | None:
        self.calls.append(rate)
        return self.at(rate)


def double_with_capacity(capacity: float) -> MeasureDouble:
    """A server that meets the tier (attainment 1.0) up to `capacity` and misses it (0.5) above."""
    return MeasureDouble(lambda rate: 1.0 if rate <= capacity else 0.5)


async def test_finds_a_capacity_within_tolerance():
    double = double_with_capacity(3.7)
    found = await search_capacity(double, 0.9, 0.5, 64, steps=20, tolerance=0.1)
    assert found.bound == "found"
    assert 3.7 / 1.1 <= found.max_rate <= 3.7 < found.first_failing
    assert found.first_failing / found.max_rate - 1 <= 0.1
    # The ladder to the first failure, then geometric bisection from its last pass.
    assert double.calls[:4] == [0.5, 1.0, 2.0, 4.0]
    assert double.calls[4] == pytest.approx(math.sqrt(8))
    assert [p.rate for p in found.probes] == double.calls
    assert found.measurements == len(double.calls)


async def test_spends_exactly_the_step_budget():
    double = double_with_capacity(3.7)
    found = await search_capacity(double, 0.9, 0.5, 64, steps=7, tolerance=0.0)
    assert len(double.calls) == 7
    assert found.bound == "found"
    assert found.max_rate < 3.7 < found.first_failing


async def test_a_budget_spent_on_the_ladder_says_so():
    double = double_with_capacity(3.7)
    found = await search_capacity(double, 0.9, 0.5, 64, steps=3)
    assert double.calls == [0.5, 1.0, 2.0]
    assert (found.max_rate, found.first_failing, found.bound) == (2.0, None, "budget_spent")


async def test_below_min_stops_at_once():
    double = double_with_capacity(0.1)
    found = await search_capacity(double, 0.9, 0.5, 64, steps=10)
    assert double.calls == [0.5]
    assert (found.max_rate, found.first_failing, found.bound) == (None, 0.5, "below_min")


async def test_no_attainment_fails():
    double = MeasureDouble(lambda rate: None)
    found = await search_capacity(double, 0.9, 0.5, 64, steps=10)
    assert found.bound == "below_min"
    assert found.probes[0].attainment is None and not found.probes[0].met


async def test_above_max_when_the_highest_rate_passes():
    double = double_with_capacity(100)
    found = await search_capacity(double, 0.9, 0.5, 5, steps=10)
    # The ladder is capped at max_rate and always ends on it.
    assert double.calls == [0.5, 1.0, 2.0, 4.0, 5]
    assert (found.max_rate, found.first_failing, found.bound) == (5, None, "above_max")


async def test_min_rate_equal_to_max_rate_is_one_rung():
    double = double_with_capacity(100)
    found = await search_capacity(double, 0.9, 2.0, 2.0, steps=10)
    assert double.calls == [2.0]
    assert found.bound == "above_max"


async def test_reuses_known_rates_and_fills_them_in():
    known: dict[float, float | None] = {0.5: 1.0, 1.0: 1.0, 2.0: 1.0, 4.0: 0.5}
    double = double_with_capacity(3.7)
    found = await search_capacity(double, 0.9, 0.5, 64, steps=10, known=known)
    # The ladder was known: only the bisection measured.
    assert len(double.calls) == 3 and 4.0 not in double.calls
    assert [p.reused for p in found.probes] == [True] * 4 + [False] * 3
    assert found.measurements == 3
    assert all(known[rate] == 1.0 for rate in double.calls)
    assert len(known) == 7

    again = double_with_capacity(3.7)
    repeat = await search_capacity(again, 0.9, 0.5, 64, steps=10, known=known)
    assert again.calls == []
    assert (repeat.max_rate, repeat.first_failing) == (found.max_rate, found.first_failing)


async def test_a_search_on_known_rates_goes_on_where_they_stop():
    known: dict[float, float | None] = {}
    first = double_with_capacity(3.7)
    await search_capacity(first, 0.9, 0.5, 64, steps=5, tolerance=0.0, known=known)
    more = double_with_capacity(3.7)
    await search_capacity(more, 0.9, 0.5, 64, steps=2, tolerance=0.0, known=known)
    alone = double_with_capacity(3.7)
    await search_capacity(alone, 0.9, 0.5, 64, steps=7, tolerance=0.0)
    assert first.calls + more.calls == alone.calls


async def test_known_rates_inside_the_bracket_are_read_first():
    known: dict[float, float | None] = {3.5: 1.0}
    double = double_with_capacity(3.7)
    found = await search_capacity(double, 0.9, 0.5, 64, steps=10, tolerance=0.2, known=known)
    assert double.calls == [0.5, 1.0, 2.0, 4.0]
    assert (found.max_rate, found.first_failing) == (3.5, 4.0)


async def test_known_rates_match_despite_rounding():
    known: dict[float, float | None] = {0.1 * 3: 1.0}
    double = double_with_capacity(100)
    await search_capacity(double, 0.9, 0.3, 0.3, steps=1, known=known)
    assert double.calls == []


async def test_a_target_is_met_at_equality():
    double = MeasureDouble(lambda rate: 0.9 if rate <= 1 else 0.0)
    found = await search_capacity(double, 0.9, 1.0, 8, steps=10)
    assert found.max_rate == pytest.approx(1.0, rel=0.1)


async def test_a_pass_above_a_failure_keeps_the_bracket_below_the_failure():
    # Meets the tier up to 3.7 but for a dip between 2.5 and 3.0: the ladder passes 2 and
    # fails 4, the bisection's first probe (2.83) falls into the dip.
    double = MeasureDouble(lambda rate: 0.0 if 2.5 < rate <= 3.0 or rate > 3.7 else 1.0)
    found = await search_capacity(double, 0.9, 0.5, 64, steps=20, tolerance=0.05)
    assert found.bound == "found"
    assert found.max_rate <= 2.5 < found.first_failing <= 3.0


@pytest.mark.parametrize("seed", range(50))
async def test_noise_never_breaks_the_bracket(seed):
    rng = random.Random(seed)
    double = MeasureDouble(lambda rate: rng.choice([None, 0.0, 0.5, 0.95, 1.0]))
    found = await search_capacity(double, 0.9, 0.5, 64, steps=12, tolerance=0.01)
    assert len(double.calls) <= 12
    failing = [p.rate for p in found.probes if not p.met]
    if failing:
        assert found.first_failing == min(failing)
    passing = [p.rate for p in found.probes if p.met and p.rate < min(failing, default=math.inf)]
    assert found.max_rate == max(passing, default=None)
    if found.max_rate is not None and found.first_failing is not None:
        assert found.max_rate < found.first_failing
        assert found.bound == "found"


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"target": 0}, "target"),
        ({"target": 1.5}, "target"),
        ({"min_rate": 0}, "min_rate"),
        ({"min_rate": -1}, "min_rate"),
        ({"min_rate": 8, "max_rate": 4}, "max_rate"),
        ({"steps": 0}, "steps"),
        ({"growth": 1.0}, "growth"),
        ({"tolerance": -0.1}, "tolerance"),
    ],
)
async def test_rejects_bad_arguments_by_name(arguments, name):
    double = double_with_capacity(3.7)
    given = {"target": 0.9, "min_rate": 0.5, "max_rate": 64, "steps": 10} | arguments
    with pytest.raises(ValueError, match=name):
        await search_capacity(double, **given)
    assert double.calls == []


# attainment


def record(
    index: int,
    start: float,
    ttft: float | None = 0.1,
    tokens: int = 11,
    e2e: float | None = 0.6,
    status: int = 200,
) -> RequestRecord:
    """An open loop's request scheduled `start` s after T0: with the defaults, a good one with
    TTFT 100 ms and TPOT 50 ms."""
    return RequestRecord(
        index=index,
        request_id=f"r{index}",
        sent_at=T0 + start,
        scheduled_at=T0 + start,
        ttft_s=ttft,
        e2e_s=e2e,
        prompt_tokens=16,
        output_tokens=tokens,
        expected_prompt_tokens=16,
        expected_output_tokens=tokens,
        status=status,
        error=None if status == 200 else f"HTTP {status}",
    )


TIER = SloTier(ttft_ms=200, tpot_ms=60)


def test_attainment_counts_only_requests_started_inside_the_window():
    records = [
        record(0, 0.0, ttft=5.0),  # before the window: a miss that does not count
        record(1, 1.0),
        record(2, 2.0, ttft=0.3),  # TTFT 300 ms misses the tier
        record(3, 3.0),
        record(4, 9.0, ttft=5.0),  # after the window
    ]
    assert attainment(records, Window(T0 + 1, T0 + 3), TIER) == pytest.approx(2 / 3)
    assert attainment(records, None, TIER) == pytest.approx(2 / 5)


def test_attainment_judges_each_limit_the_tier_gives():
    slow_decode = record(0, 0.0, e2e=1.1)  # TPOT 100 ms
    assert attainment([slow_decode], None, TIER) == 0.0
    assert attainment([slow_decode], None, SloTier(ttft_ms=200)) == 1.0
    assert attainment([record(0, 0.0, ttft=0.3)], None, SloTier(tpot_ms=60)) == 1.0


def test_a_request_without_a_tpot_meets_the_tpot_limit():
    single_token = record(0, 0.0, tokens=1, e2e=0.1)
    assert single_token.tpot_s is None
    assert attainment([single_token], None, TIER) == 1.0


def test_a_failed_request_never_meets_a_tier():
    failed = record(0, 0.0, status=500)
    no_first_token = record(1, 0.0, ttft=None, e2e=None)
    assert attainment([failed, no_first_token], None, SloTier(tpot_ms=60)) == 0.0


def test_attainment_is_none_when_nothing_counts():
    assert attainment([], None, TIER) is None
    assert attainment([record(0, 0.0)], Window(T0 + 1, T0 + 2), TIER) is None


# sharing runs between tiers


async def test_one_tiers_runs_answer_another_tier_without_running_again():
    # A run at rate r: TTFT grows with the rate, so the strict tier's capacity is lower.
    ran: list[float] = []

    async def run_double(rate: float) -> Measured:
        ran.append(rate)
        return Measured([record(0, 0.0, ttft=0.05 * rate)], None)

    runs: dict[float, Measured] = {}
    loose, strict = SloTier(ttft_ms=400), SloTier(ttft_ms=100)
    first = await search_capacity(tier_measure(run_double, runs, loose), 0.9, 0.5, 64, steps=10)
    assert first.max_rate == pytest.approx(8, rel=0.1)
    assert set(runs) == set(ran)

    ran.clear()
    known = known_attainments(runs, strict)
    second = await search_capacity(
        tier_measure(run_double, runs, strict), 0.9, 0.5, 64, steps=10, known=known
    )
    assert second.max_rate == pytest.approx(2, rel=0.1)
    assert 1.0 not in ran and 2.0 not in ran and 4.0 not in ran
