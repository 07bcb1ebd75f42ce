"""workload: the shapes, loads and sizing of the matrix, and the rate search after it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Annotated, Literal

import pydantic
from pydantic import Field, model_validator
from pydantic_core import core_schema

from pdpipeline.profile.strict import Strict


@dataclass(frozen=True)
class Lengths:
    """A token length, fixed (`lo == hi`) or drawn uniformly from [lo, hi]; in a profile and in
    the warehouse it is the text 'N' or 'LO:HI', read once into this."""

    lo: int
    hi: int

    @classmethod
    def parse(cls, text: str | int) -> Lengths:
        """'512' -> fixed; '256:1024' -> uniform."""
        lo, _, hi = str(text).partition(":")
        lengths = cls(int(lo), int(hi or lo))
        if not 1 <= lengths.lo <= lengths.hi:
            raise ValueError(f"bad length range {text!r}: need 1 <= lo <= hi")
        return lengths

    @property
    def fixed(self) -> int | None:
        """The one length of a fixed length; None for a range."""
        return self.lo if self.lo == self.hi else None

    def draw(self, rng: random.Random) -> int:
        return self.lo if self.lo == self.hi else rng.randint(self.lo, self.hi)

    def __str__(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}:{self.hi}"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type, handler: pydantic.GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # Validated from its text (or a YAML integer), dumped back to the text.
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            json_schema_input_schema=core_schema.union_schema(
                [core_schema.int_schema(ge=1), core_schema.str_schema()]
            ),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def _validate(cls, value: object) -> Lengths:
        if isinstance(value, Lengths):
            return value
        try:
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ValueError
            return cls.parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not N or LO:HI with 1 <= LO <= HI") from None


class WorkloadPoint(Strict):
    """One shape of the workload matrix: its prompt and output lengths."""

    input_len: Lengths = Field(description="N or LO:HI")
    output_len: Lengths


class RateSearch(Strict):
    """Searches, per series, shape and SLO tier, the highest open-loop request rate that meets
    the tier: a geometric ladder from min_rate up to the first failing rate, then bisection
    between the last pass and the first fail, within `steps` measured rates per tier (rates
    already measured for another tier are reused)."""

    tiers: list[str] | None = Field(None, min_length=1, description="none: every tier")
    min_rate: float = Field(gt=0)
    max_rate: float = Field(gt=0)
    steps: int = Field(6, ge=1)
    growth: float = Field(2.0, gt=1)
    # The search stops once the last pass and the first fail are within this share.
    tolerance: float = Field(0.1, gt=0)

    @model_validator(mode="after")
    def _range(self) -> RateSearch:
        if self.min_rate > self.max_rate:
            raise ValueError(f"min_rate {self.min_rate:g} is above max_rate {self.max_rate:g}")
        return self


class Workload(Strict):
    api: Literal["completions", "chat"] = "completions"
    points: list[WorkloadPoint] = Field(min_length=1)
    concurrency: list[Annotated[int, Field(gt=0)]] = Field(default_factory=list)
    request_rates: list[Annotated[float, Field(gt=0)]] = Field(default_factory=list)
    burstiness: float = Field(1.0, gt=0)
    max_concurrency: int | None = Field(None, gt=0)
    # A point runs until its steady window (loadgen/window.py) has lasted `min_window_s` with
    # `min_window_requests` started inside it, and at least `requests_per_point` were sent; a
    # point reaching `max_requests_per_point` first stops there, its run flagged window_short.
    min_window_s: float = Field(20.0, ge=0)
    min_window_requests: int = Field(32, ge=1)
    max_requests_per_point: int = Field(2000, ge=1)
    requests_per_point: int = Field(1, ge=1)
    # Open loop: the share of the arrival period before the window starts.
    open_loop_warmup_share: float = Field(0.1, ge=0, lt=1)
    # After the matrix, per shape and SLO tier: the highest request rate meeting the tier.
    rate_search: RateSearch | None = None
    warmup_requests: int = Field(4, ge=0)
    repeats: int = Field(1, ge=1)
    seed: int = 0
    # A request not finished within this fails (and makes its run invalid) rather than hang.
    request_timeout_s: float = Field(600.0, gt=0)

    @model_validator(mode="after")
    def _some_load(self) -> Workload:
        if not self.concurrency and not self.request_rates:
            raise ValueError("give concurrency levels and/or request_rates")
        return self

    @model_validator(mode="after")
    def _room_for_a_window(self) -> Workload:
        bound = self.max_requests_per_point
        if bound < self.requests_per_point:
            raise ValueError(
                f"max_requests_per_point {bound} is below requests_per_point "
                f"{self.requests_per_point}"
            )
        if self.concurrency and bound <= max(self.concurrency):
            # A closed loop's window opens at its c-th completion; no request would start in it.
            raise ValueError(
                f"max_requests_per_point {bound} leaves no steady window at concurrency "
                f"{max(self.concurrency)}: give more"
            )
        return self
