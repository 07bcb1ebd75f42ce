"""slo and slo_tiers: the service levels a request, a run and a load are judged at."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from pdpipeline.profile.strict import Strict


class Slo(Strict):
    """The limits of each run's own `goodput` figure; without `slo_tiers`, the one tier."""

    ttft_ms: float = Field(500.0, gt=0)
    tpot_ms: float = Field(50.0, gt=0)


class SloTier(Strict):
    """A service level the report judges the setups at (DistServe's goodput): a request meets it
    when it meets every limit given, and a load meets it when `attainment` of its requests do."""

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


DEFAULT_TIER = "default"
TierName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
