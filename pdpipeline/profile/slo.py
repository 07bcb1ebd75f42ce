"""slo and slo_tiers: the service levels a request, a run and a load are judged at, and the one
rule of whether a request meets one."""

from __future__ import annotations

import math
from typing import Annotated, TypeAlias

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from pdpipeline.profile.strict import Strict

# A request's latency in milliseconds, or many of them; a missing one (no first token, or no
# TPOT for a single output token) is None alone, NaN in an array and null in an expression.
Latency: TypeAlias = float | np.ndarray | pl.Expr | None
# Whether each request meets a limit: a bool, a boolean array or a boolean expression.
Met: TypeAlias = bool | np.ndarray | pl.Expr


class SloTier(Strict):
    """A service level (DistServe's goodput): a request meets it when it meets every limit given,
    and a load meets it when `attainment` of its requests do. Each run's own goodput figure is
    judged at one too (the profile's `slo`)."""

    ttft_ms: float | None = Field(None, gt=0)
    tpot_ms: float | None = Field(None, gt=0)
    attainment: float = Field(0.9, gt=0, le=1)

    @model_validator(mode="after")
    def _some_limit(self) -> SloTier:
        if self.ttft_ms is None and self.tpot_ms is None:
            raise ValueError(
                "give ttft_ms and/or tpot_ms: every request meets a tier with no limit"
            )
        return self

    def meets(self, ok: Met, ttft_ms: Latency, tpot_ms: Latency) -> Met:
        """Whether requests meet this tier: `meets_limits` at its limits."""
        return meets_limits(ok, ttft_ms, tpot_ms, self.ttft_ms, self.tpot_ms)


def meets_limits(
    ok: Met,
    ttft_ms: Latency,
    tpot_ms: Latency,
    ttft_limit: float | np.ndarray | None,
    tpot_limit: float | np.ndarray | None,
) -> Met:
    """Whether requests meet the limits given (None: no limit), alike for one request, numpy
    arrays (limits may be arrays too, broadcast against the latencies) and polars expressions.

    A failed request, or one without a first token, never meets; one without a TPOT (a single
    output token) has no decode gap to miss. A limit is met at exactly the limit."""
    met = ok & _measured(ttft_ms)
    if ttft_limit is not None:
        met = met & _within(ttft_ms, ttft_limit)
    if tpot_limit is not None:
        met = met & (_missing(tpot_ms) | _within(tpot_ms, tpot_limit))
    return met


def _measured(latency: Latency) -> Met:
    if latency is None:
        return False
    if isinstance(latency, pl.Expr):
        return latency.is_not_null()
    if isinstance(latency, np.ndarray):
        return ~np.isnan(latency)
    return not math.isnan(latency)


def _missing(latency: Latency) -> Met:
    if latency is None:
        return True
    if isinstance(latency, pl.Expr):
        return latency.is_null()
    if isinstance(latency, np.ndarray):
        return np.isnan(latency)
    return math.isnan(latency)


def _within(latency: Latency, limit: float | np.ndarray) -> Met:
    # A missing latency is within no limit: None here, NaN compares false, null is not true.
    return False if latency is None else latency <= limit


# The limits of each run's own goodput figure where the profile's `slo` leaves one out.
RUN_SLO = SloTier(ttft_ms=500.0, tpot_ms=50.0)
DEFAULT_TIER = "default"
TierName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
